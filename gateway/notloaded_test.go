package gateway

import (
	"errors"
	"fmt"
	"testing"
)

// TestOnlyNotLoadedYet: a node whose only routing errors are versions on
// their way to it (it serves the previous champion meanwhile) stays ready;
// any other load failure, alone or beside them, makes it not ready.
func TestOnlyNotLoadedYet(t *testing.T) {
	pending := fmt.Errorf("model fraud v2: %w: v2 is being fetched", ErrNotLoadedYet)
	broken := errors.New("model fraud v3: cannot read artifact")
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, true},
		{pending, true},
		{errors.Join(pending, fmt.Errorf("model iris v4: %w", ErrNotLoadedYet)), true},
		{broken, false},
		{errors.Join(pending, broken), false},
	} {
		if got := onlyNotLoadedYet(c.err); got != c.want {
			t.Errorf("onlyNotLoadedYet(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
