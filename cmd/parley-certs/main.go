// Command parley-certs writes throwaway certificates for a local cluster's mutual
// TLS (cluster.tls): a CA and one certificate per node, valid for 127.0.0.1, ::1 and
// localhost. Files already in the directory are kept while they are valid.
//
//	parley-certs -dir .pgdata/cluster/certs -n 3        # node1 … node3
//	parley-certs -dir certs alpha beta                  # alpha, beta
//
// A node then takes cluster.tls.cert DIR/NAME.pem, cluster.tls.key DIR/NAME-key.pem
// and cluster.tls.ca DIR/ca.pem. Not for production: the CA key sits next to the
// certificates, unprotected but for its file mode.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/parleychat/parley/internal/certs"
)

func main() {
	dir := flag.String("dir", "certs", "directory to write into (created with mode 0700)")
	n := flag.Int("n", 0, "also write certificates node1 … nodeN")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: parley-certs [-dir DIR] [-n N] [name ...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	names := flag.Args()
	for i := 1; i <= *n; i++ {
		names = append(names, fmt.Sprintf("node%d", i))
	}
	if len(names) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := certs.WriteDir(*dir, names...); err != nil {
		fmt.Fprintf(os.Stderr, "parley-certs: %v\n", err)
		os.Exit(1)
	}
}
