// Package node assembles and runs one modelgate node: the registry it is
// given (a cluster.Node), the artifact store, the catalog of loaded
// versions and the reconciler that is its routing table's only writer, the
// background loops (drift windows, shadow mirrors, the statistics push to
// the leader and the leader's merge of them: stats.go), the lifecycle
// controller, and the gateway's HTTP listeners. It is the one place a node
// is wired; cmd/modelgate's serve builds it from flags, tests build it
// from a Config.
//
// Order matters at both ends:
//   - Start binds the listeners first (the admin URL that webhooks carry is
//     the admin listener's), then starts the reconciler, the loops and the
//     controller.
//   - Shutdown drains the HTTP listeners first (no new request, no admin
//     write that would reconcile), then stops the loops and cancels the
//     controller's deliveries (a cancelled delivery is left for the next
//     leader, not recorded failed), and only then retires the versions,
//     all within the caller's drain deadline.
package node
