// Package fraud generates synthetic card transactions with a realistic,
// learnable fraud process, for the demo model, the benchmarks and the drift
// tests.
//
// A Generator draws one Transaction at a time from a seeded PCG source:
// first its raw fields (amount, merchant category, hour, distance from home,
// velocity, device and account age, flags ...), then its label from a latent
// logistic model over those raw fields, with a base fraud rate of about 2%.
// Encode turns a transaction into the NumFeatures float32 features a model
// scores (FeatureNames documents the layout).
//
// Invariants the tests rely on:
//
//   - The same seed and the same Drift give the same transactions, rows and
//     labels, in the same order.
//   - Every transaction consumes the same random draws whatever the drift,
//     except NewCategory (which changes what is drawn). So two generators with
//     the same seed, one undrifted and one with CovariateShift or ConceptDrift,
//     produce rows that differ only where the drift says they should.
//   - Without NewCategory drift the "mcc_other" feature is always zero.
//   - Next does not allocate.
package fraud
