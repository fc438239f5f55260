package registry

// DefaultIdempotencyWindow is how many idempotency keys a state remembers.
// A retry whose key has fallen out of the window (10,000 later writes) is
// applied as a new command, so clients must retry within that many writes;
// an admin retry after an unknown Raft outcome comes seconds later.
const DefaultIdempotencyWindow = 10000

// keyEntry is one remembered command: its key, what it asked for, and what
// it did.
type keyEntry struct {
	Key         string `json:"key"`
	Fingerprint string `json:"fingerprint"`
	Result      Result `json:"result"`
}

// keyRing remembers the last limit applied commands' keys. It is part of
// the replicated state (and of snapshots): every replica must agree on
// whether a retry is a duplicate.
type keyRing struct {
	limit   int
	entries []keyEntry // a ring once full: next is the oldest
	next    int
	index   map[string]int // key → position in entries
}

func newKeyRing(limit int) keyRing {
	return keyRing{limit: limit, index: make(map[string]int)}
}

func (k *keyRing) get(key string) (keyEntry, bool) {
	i, ok := k.index[key]
	if !ok {
		return keyEntry{}, false
	}
	return k.entries[i], true
}

// add remembers e, forgetting the oldest key when full. e.Key must not be
// remembered already.
func (k *keyRing) add(e keyEntry) {
	if len(k.entries) < k.limit {
		k.index[e.Key] = len(k.entries)
		k.entries = append(k.entries, e)
		return
	}
	delete(k.index, k.entries[k.next].Key)
	k.entries[k.next] = e
	k.index[e.Key] = k.next
	k.next = (k.next + 1) % k.limit
}

// ordered returns the entries oldest first, the order snapshots keep them in
// (so a restored ring, laid out from position 0, encodes the same).
func (k *keyRing) ordered() []keyEntry {
	out := make([]keyEntry, 0, len(k.entries))
	out = append(out, k.entries[k.next:]...)
	return append(out, k.entries[:k.next]...)
}

func (k *keyRing) clone() keyRing {
	c := newKeyRing(k.limit)
	for _, e := range k.ordered() {
		c.add(e)
	}
	return c
}
