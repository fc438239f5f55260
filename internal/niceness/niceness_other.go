//go:build !linux

package niceness

func lower(int) error { return nil }

func threadsAt(int) (int, error) { return 0, nil }
