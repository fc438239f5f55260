//go:build !linux

package predlog

// lowerPriority does nothing where a thread's nice value cannot be set on
// its own: the background goroutines run at the process's priority.
func lowerPriority(nice int) error { return nil }
