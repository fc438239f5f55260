// Package drift measures how a model version's traffic departs from its
// reference data, inline on the scoring path, per input feature and on the
// output score.
//
// It imports nothing of modelgate and knows nothing of HTTP, Raft or
// metrics: the gateway feeds it rows, the admin API serves its Reports, the
// lifecycle controller turns Sustained alerts into retraining requests.
//
// # The pieces
//
//   - Profile: the reference of one version, built from its training data
//     (ProfileBuilder, ProfileFromReader for a CSV or NDJSON file) or from
//     its scored rows (Bootstrap: the first ones, or a reservoir over a
//     period). Versioned JSON ({"v":1,…}), stored
//     with the version's registration.
//   - Sketch: the streaming state of one stretch of traffic. Observe is
//     sharded and allocation-free; sketches add up (Merge) and travel
//     between nodes (Export, Import, MergeExport).
//   - Windows: tumbling windows of sketches rotated by a clock, merged for
//     any horizon (Snapshot), the last few kept apart for alerting (Recent).
//     A cluster's leader merges its nodes' closed windows (ClosedSince,
//     NewWindowsAt, AddClosed: merge.go) and judges them like its own.
//   - Compare (ComparePolicy): a sketch against its profile → a Report with
//     every statistic, its p-value, data quality and a breach decision per
//     Policy. Evaluate judges a Windows' recent traffic, pooling windows
//     until they hold enough rows, and raises Alerts for breaches sustained
//     over consecutive judgements (EvaluateRecent: the same from
//     Thresholds).
//
// # Features and their representation
//
// A feature is a column of a row (an input tensor's name and a column
// index, with an optional name). Rows passed to Observe are all inputs'
// columns concatenated in the profile's Inputs order. NaN and ±Inf count as
// missing, and a change of the missing rate is drift like any other (PSI,
// JS and χ² get a missing bin when either side has missing values).
//
// A categorical feature (by default a column whose reference holds at most
// 16 distinct values, all integers: flags, one-hot slots, codes) keeps one
// counter per declared value and one for "other", which is where a value the
// reference never had lands: the demo model's "mcc_other" slot is declared
// with the single value 0, so the new merchant category of the synthetic
// data shows as "other" at once.
//
// A numeric feature keeps counters over a fine grid of cells spanning the
// reference's [p0.1, p99.9] widened by a quarter of that range on each
// side, plus two open tails (below and above the grid) whose counts and
// value sums are exact. Cells are of equal width, or of equal width in
// √(x−lo) when that needs fewer cells (right-skewed values: a rare class's
// scores, raw amounts); the builder picks the fewest cells (128 to 512)
// that put at most 1% of the reference in any cell. A value's cell is one
// subtraction, one multiplication and a conversion (plus a square root on a
// sqrt grid), so a 30-feature row costs well under the 300 ns budget.
//
// The grid is read two ways:
//
//   - coarse bins for PSI and JS: the reference deciles snapped to cell
//     edges, plus the two tails as bins of their own (12 bins for a
//     continuous feature, fewer where values repeat). Streaming counts per
//     coarse bin are exact, so PSI and JS equal the batch computation over
//     the same bins.
//   - the fine cells for KS and Wasserstein: the profile stores the
//     reference's own counts on the same grid, and both CDFs are read the
//     same way — exact at every cell edge, linear inside a cell, each tail a
//     point mass at its exact mean. KS is off by at most the reference
//     share of one cell (≤ 1%, by the grid's construction; repeated values
//     are exact), Wasserstein by a second-order term inside cells (exact in
//     the tails whenever the CDFs do not cross there). On the synthetic
//     fraud data the tests measure KS within 0.0031 and Wasserstein within
//     0.12% of exact batch computations over the raw rows.
//
// Why a fixed grid rather than a t-digest or KLL sketch: a grid merges by
// adding counters (exact and associative, so nodes, windows and horizons
// combine in any order to the same bits of counts), updates in a few
// nanoseconds without allocation or data-dependent work, and shares its
// cells with the reference so errors do not compound. Its cost is memory
// proportional to the cells, which the two-tier windows bound.
//
// The output score is a numeric feature of its own, plus the count of
// positive decisions (score ≥ the profile's threshold) for the positive
// rate.
//
// # The statistics
//
//   - psi: population stability index, Σ (c−r)·ln(c/r) over the coarse
//     bins' shares, half a count of smoothing on bins that are not empty on
//     both sides. Rule of thumb: < 0.1 stable, 0.1–0.2 moderate, > 0.2 a
//     significant shift.
//   - js: Jensen–Shannon distance, √(JS divergence in bits), in [0, 1], over
//     the same bins; symmetric and needs no smoothing. For small shifts
//     js² ≈ psi/5.5, so js 0.1 is about psi 0.055.
//   - ks: Kolmogorov–Smirnov statistic, sup |F_ref − F_cur|, numeric only.
//   - wasserstein: Wasserstein-1 distance ∫|F_ref − F_cur| dx in reference
//     standard deviations (absent when the reference is constant); numeric
//     only. How far mass moved, not only how much of it.
//   - chi2_p: p-value of Pearson's χ² test of homogeneity between the
//     reference and current counts, categorical only. Two-sample, because
//     the reference is a sample too: an unseen category gives a tiny p, not
//     a division by zero.
//
// The values are effect sizes for people; the decisions rest on tests.
//
// # Deciding: size-aware tests
//
// A fixed threshold on an effect size judges noise, not drift: sampling
// noise in PSI, JS and KS shrinks as 1/n and 1/√n, so one cut-off breaches
// on noise in small windows and misses real shifts in large ones (a 0.2σ
// shift breached 62% of 1,000-row windows and 35% of 20,000-row ones).
// So every statistic is judged as a test of "the traffic has the
// reference's distribution", with a p-value that accounts for both sample
// sizes (n_ref reference rows, n_cur current ones, N = (1/n_ref +
// 1/n_cur)⁻¹):
//
//   - ks_p: the asymptotic Kolmogorov distribution of D at the effective
//     size en = round(n_ref·n_cur/(n_ref+n_cur)) — scipy's ks_2samp
//     "asymp" mode, which KSPValue matches to 1e-3 (3e-6 measured, en 140
//     to 9,091: testdata/golden.json, made by testdata/golden.py). The
//     grid reads KS at cell edges, never above the exact KS, so the p-value
//     errs on the side of no alarm.
//   - psi_p and js_p: under no drift N·PSI and 8·ln2·N·js² are each
//     asymptotically χ²(k−1), k the bins: PSI is Jeffreys' divergence and
//     the JS divergence (in nats) Σ(c−r)²/(8m), whose second-order terms
//     are Pearson's statistic over N. Comparing the p-value with α is
//     comparing PSI with χ²₁₋α(k−1)/N — the "threshold that accounts for
//     n" — so a clean 100-row window and a clean 100,000-row one breach
//     equally rarely, and a real shift breaches more surely the more rows
//     it is seen in, never less.
//   - chi2_p: Pearson's χ² as before.
//
// Rare bins. χ² approximations over-report when expected counts are tiny:
// 2 of 1,200 rows in a category the reference never had gives χ² p =
// 4.5e-5 where Fisher's exact test gives 0.0115. Before psi_p, js_p and
// chi2_p are computed, bins whose smaller expected count is below 5
// (Cochran's rule, on every cell) are merged, rarest first: a numeric
// feature's bin into its smaller neighbour (bins stay intervals; this
// mostly folds the near-empty tails in), a category into the next rarest
// category (rare ones pool into one "rare" bin before joining a common
// one). Merging looks only at the column totals, as the expected counts
// do. A table that is down to two bins and still has a rare cell gets
// Fisher's exact test instead (the report's "exact"), and that p-value
// stands for psi_p, js_p and chi2_p alike, the three being the same test
// there. The statistics' values are reported on the unmerged bins.
//
// Correction. One judgement tests every enabled statistic of every feature
// (and of the score) at once, some 90 tests for the fraud model; each at α
// would breach somewhere on most clean windows. The p-values of one
// judgement are corrected together by Holm's step-down procedure at the
// policy's α: the probability that a clean judgement breaches anywhere is
// at most α. Holm rather than Benjamini–Hochberg because a breach here is
// an alert — a page, a retraining request — whose cost does not depend on
// how many features are wrong, so the family-wise error rate is the one to
// bound; because Holm holds under any dependence, and one feature's KS, PSI
// and JS are strongly dependent, as are features derived from one raw field
// (BH needs positive dependence, plausible but unproven here); and because
// what BH would add, power when many features drift together, matters
// little: the strongest of them still pass Holm and the alert fires. Holm
// is uniformly more powerful than the Bonferroni correction it replaces.
//
// A statistic breaches when its test rejects and its value reaches its
// Threshold, which is now a minimum effect worth alerting on (0 by
// default: any significant change). For very high traffic, where every
// real but negligible shift is significant, a minimum effect (say KS 0.05)
// is how to ignore it. Wasserstein has no test of its own: it breaches on
// the feature's KS test and its own minimum. PolicyFromThresholds maps the
// registry's fixed thresholds: α from chi2_p's threshold (already a
// false-alarm rate), no minimum effect from PSI, JS and KS (they were
// cut-offs for 1,000-row windows; as floors they would bring the size
// dependence back).
//
// The model as a whole. A report counts the input features with a test
// (judged_features) and those that breach (drifted_features); when their
// share reaches the policy's drift_share (0.5 by default, Evidently's
// drift_share) the report has dataset_drift, and sustained over the alert's
// runs it is a "drift_share" alert. The score is not counted: it moves with
// its inputs.
//
// # Pooling windows, and saying "no data"
//
// min_count rows are needed for a judgement (1,000 by default: the
// asymptotic tests need their sample, and below 140 effective rows KS
// would leave scipy's method). Judged per window, a model below ~17 rows/s
// with 1-minute windows was never judged at all. Evaluate cuts the closed
// windows, newest backwards, into disjoint runs of consecutive windows,
// each the shortest that reaches min_count, up to max_windows back (the 60
// windows kept one by one by default); with traffic of min_count a window
// each run is one window, as before. consecutive_windows counts runs: a
// statistic alerts when it breached in that many runs in a row — disjoint
// stretches of evidence, so three breaching runs of a clean model happen
// with probability about α³ per feature and statistic, whatever the
// traffic. At 5 rows/s (300 a minute) a run is 4 windows, and a 0.5σ shift
// alerts after 3,000 to 3,600 rows.
//
// A judgement says what it could do: "no_data" (no rows at all),
// "not_enough_data" (rows, fewer than min_count even pooled; statistics
// shown, nothing judged), "no_drift" or "drift". No data is never no drift.
// A closed window never changes, so Evaluate remembers each complete run's
// report per policy and a window close costs one comparison.
//
// # Data quality
//
// Beside drift, per feature and window: missing values (NaN, ±Inf),
// numeric values outside the profile's range, categorical values the
// profile does not declare, and the rows with any such problem in any
// input (rows_affected). They are counters of the sketch like the others,
// so they merge across shards, windows and nodes and travel in exports.
// They cost nothing on the common path: a value off the grid or undeclared
// already leaves the fast path; it only marks its row, counted once.
//
// "Outside the range" is outside the grid: below the reference's p0.1 or
// above its p99.9 by more than a quarter of that span. Not the reference's
// own min and max: a fresh value exceeds the max of 10,000 clean values
// with probability 2/10,001 by construction, and one heavy tail sets the
// max anywhere. Each feature's reference_share is the reference's own rate
// of the same problems, the rate to expect when nothing is wrong.
//
// # Onboarding a version without a profile
//
// A Bootstrap collects the reference from the version's first scored rows
// (BootstrapConfig.Period 0), or, with a period, a uniform reservoir sample
// of every row scored during it (and until Rows were seen): a reference
// bootstrapped over a day spans the day instead of the hour of deployment,
// whose time-of-day mix would otherwise read as drift every other hour.
// Progress says where it stands ("3,120 of 10,000 reference rows"); the
// sample freezes into a Profile when complete.
//
// # Defaults, and what the tests show
//
// DefaultPolicy (= PolicyFromThresholds(DefaultThresholds()), the
// registry's default): PSI, JS, KS and χ² enabled, α = 0.01 family-wise per
// judgement, min_count 1,000, 3 runs in a row, drift_share 0.5,
// Wasserstein reported (minimum 0.5σ when enabled). The simulations
// (sim_test.go, fixed seeds, a fake clock, Evaluate after every window):
//
//   - 20,000 clean windows of 1,000 rows: no alert; 0.45% of single
//     judgements breach (α = 1%). 300 windows of the fraud model: no alert.
//   - a 0.5σ shift of one feature: alerts on it after 3,000 rows at 1,000
//     rows a minute and at 300 (20 seeds each, synthetic and fraud models).
//   - a 0.2σ shift, windows of 100 to 10,000 rows: no false alarm at any
//     size; judgements of 1,000–1,200 rows breach 95–100% of the time
//     however the windows were cut, judgements of 3,000 rows or more every
//     time; every size alerts (after 3,000 to 30,000 rows).
//   - 2 of 1,200 rows in a new category: Fisher's p 0.0115, no breach.
//
// On the fraud data a covariate shift of one raw field breaches exactly
// that field's features within 5,000 rows, and the new merchant category
// (20% of rows) breaches "mcc_other".
//
// # Concept drift is not data drift
//
// Concept drift changes how the label depends on the inputs while the
// inputs are drawn as before; the synthetic generator's ConceptDrift
// produces exactly the same rows as no drift. Nothing here looks at labels,
// so it correctly raises nothing: concept drift is caught later, when
// labels (chargebacks) arrive and label-based online evaluation (precision,
// recall, AUC per version, in the shadow and lifecycle packages) shows the
// model's quality falling. The output score's drift catches only the part
// of a concept change that moves the scores.
//
// # Concurrency and cost
//
// Observe takes one of N shards (N = GOMAXPROCS by default), found through
// a per-P sync.Pool hint, with TryLock moving to the next shard when the
// hinted one is busy; each shard owns a full copy of the counters (plain
// uint32, allocated apart, mutexes on separate cache lines), so no cache
// line is written by every core. Readers lock one shard at a time. The
// benchmarks (drift_bench_test.go) measure one 30-feature row at 70–130 ns
// with zero allocations on a shared 2-core machine.
//
// # Windows and memory per version
//
// Windows are aligned on multiples of their length since the Unix epoch, so
// every node's window n covers the same minute and sketches merge across
// the cluster. The live window is sharded; when the clock passes its end
// (Observe, Rotate or a read notices) its shards are drained into a ring
// of the last Rollup/Window closed windows (60 minutes) and added into a
// rollup bucket (1 hour) in a second ring reaching back Retention (24 h +
// the current hour). Closed windows and buckets are single dense copies of
// the counters in uint32. Snapshot(h) sums the windows of the last h when h
// ≤ Rollup, and whole buckets (rounded out) beyond.
//
// Memory of one version is (Rollup/Window + Retention/Rollup + 1 + shards)
// copies of 4 bytes per counter, with counters = 1 + Σ (cells + 3) over
// numeric features and the output + Σ (values + 2) over categorical ones +
// 2 (the positive decisions, the rows with a data-quality problem). The
// fraud demo profile has 4,833 counters (19 KB a copy): 1.7 MB per
// version with 2 shards. A model of 30 continuous features has about
// 13,500 counters: 4.8 MB. MaxCellMass and the window config trade that
// against resolution and history.
//
// # Exported sketches
//
// Export writes the counters sparsely (uvarint gap and value per non-zero
// counter, then the non-zero tail sums) behind a magic, a version byte and
// the profile's Fingerprint; Import checks every length, index and that
// each feature's counts add up to the row count, and never panics on bad
// input (FuzzSketchImport).
package drift
