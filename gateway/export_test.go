package gateway

import "github.com/modelgate/modelgate/runtime"

// SetTestHookPicked installs f as the scoring path's hook between taking a
// slot reference and running (see testHookPicked); nil removes it.
func SetTestHookPicked(f func(*runtime.Slot)) {
	if f == nil {
		testHookPicked.Store(nil)
		return
	}
	testHookPicked.Store(&f)
}
