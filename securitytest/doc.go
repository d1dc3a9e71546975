// Package securitytest tries a whole POP as an attacker on the same network
// would. Its test starts a real POP in-process (origin with its plays
// pipeline and licences, shields, edges, every node on its own loopback
// listeners) and runs each row of the trust-boundaries table (issue 10,
// and the admin endpoints of issue 14) as a named case: the request is refused with the right status, and, where
// the row is about cost, the origin and the shields saw no request for it
// and memory stayed bounded.
//
// The package holds only tests; this file exists so that `go vet` and
// `go list` see a package.
package securitytest
