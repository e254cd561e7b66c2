//go:build tools

// Package tools pins the command built by hack/build-controlplane.sh.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
