// Command etcd is upstream etcd's own entry point (etcdmain), built from
// go.etcd.io/etcd/server/v3 so the version comes from the Go module proxy.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
