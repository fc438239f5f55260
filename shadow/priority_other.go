//go:build !linux

package shadow

// lowerPriority does nothing where a thread's nice value cannot be set on
// its own: the mirror workers run at the process's priority.
func lowerPriority(nice int) error { return nil }
