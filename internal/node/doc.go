// Package node assembles and runs one modelgate node: the registry it is
// given (a cluster.Node), the artifact store, the catalog of loaded
// versions and the reconciler that is its routing table's only writer, the
// background loops (drift windows, shadow mirrors, the statistics push to
// the leader and the leader's merge of them: stats.go), the lifecycle
// controller, and the gateway's HTTP listeners. It is the one place a node
// is wired; cmd/modelgate's serve builds it from flags, tests build it
// from a Config.
//
// In a cluster of several members the node also distributes artifacts
// (distribute.go: fetch each routable version's bytes from a holder,
// verify, run this node's validation gate, report ready through the
// leader; the loader loads a fetched version only after that) and gates
// promotions (gate.go: the Control handed to the admin API and the
// controller refuses a move to canary or champion until the nodes the
// model's distribution policy requires are ready). Alone in its cluster a
// node does neither.
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
