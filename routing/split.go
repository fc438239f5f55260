package routing

import "github.com/cespare/xxhash/v2"

// Buckets is how many buckets the split hashes keys into: one per basis
// point of traffic.
const Buckets = 10000

// Bucket returns key's bucket, in [0, Buckets).
func Bucket(key []byte) uint32 {
	return uint32(xxhash.Sum64(key) % Buckets)
}

// ToCanary reports whether the request with routing key key goes to a
// canary answering weightBP basis points of the model's traffic.
func ToCanary(key []byte, weightBP uint32) bool {
	return weightBP > 0 && (weightBP >= Buckets || Bucket(key) < weightBP)
}
