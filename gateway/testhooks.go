package gateway

import (
	"sync/atomic"

	"github.com/modelgate/modelgate/runtime"
)

// testHookPicked, set only by tests, is called on the scoring path once a
// request holds its reference on a version's slot and before it runs: a
// test parks a request there to swap or remove the version under it
// deterministically, instead of racing a load against a swap. Unset in
// production, it costs one atomic load per request.
var testHookPicked atomic.Pointer[func(*runtime.Slot)]
