// Package modules_test checks what a program that uses the library pulls in:
// a fresh module outside the repository that imports the core and one
// adapter must list that adapter's broker client and nothing of the other
// brokers or of the test support (testcontainers, Docker, kfake, the broker
// test servers).
package modules_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const core = "github.com/msgkit/messaging"

// repoRoot is the checkout: two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.HasPrefix(mod, []byte("module "+core+"\n")) {
		t.Fatalf("%s is not the checkout of %s (%v)", root, core, err)
	}
	return root
}

// clients are the broker client modules, by adapter.
var clients = map[string]string{
	"nats":     "github.com/nats-io/nats.go",
	"redis":    "github.com/redis/go-redis/v9",
	"kafka":    "github.com/segmentio/kafka-go",
	"rabbitmq": "github.com/rabbitmq/amqp091-go",
}

// forbidden are module path prefixes no user of an adapter may see: test
// containers, the Docker client, test servers, and the dependencies of the
// optional integrations (OpenTelemetry, Prometheus, PostgreSQL).
var forbidden = []string{
	"github.com/testcontainers/",
	"github.com/docker/",
	"github.com/moby/",
	"github.com/containerd/",
	"github.com/twmb/franz-go", // kfake and its client
	"github.com/nats-io/nats-server",
	"github.com/nats-io/jwt",
	// The optional integrations are modules of their own: the core brings
	// none of them.
	"go.opentelemetry.io/",
	"github.com/prometheus/",
	"github.com/jackc/pgx",
}

// TestAdapterModuleList builds, for each adapter, a module that imports the
// core package and that adapter, runs go mod tidy and checks go list -m all.
func TestAdapterModuleList(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go mod tidy in fresh modules")
	}
	root := repoRoot(t)
	for _, adapter := range []string{"nats", "redis", "kafka", "rabbitmq"} {
		t.Run(adapter, func(t *testing.T) {
			t.Parallel()
			mods := tidyUser(t, root, adapter)
			if !slices.Contains(mods, clients[adapter]) {
				t.Errorf("the module list lacks the adapter's client %s: %v", clients[adapter], mods)
			}
			for _, m := range mods {
				for _, bad := range forbidden {
					if strings.HasPrefix(m, bad) {
						t.Errorf("a user of the %s adapter sees %s", adapter, m)
					}
				}
				for other, client := range clients {
					if other != adapter && m == client {
						t.Errorf("a user of the %s adapter sees the %s client %s", adapter, other, m)
					}
				}
				if strings.HasPrefix(m, core+"/") && m != core+"/adapters/"+adapter {
					t.Errorf("a user of the %s adapter sees the module %s", adapter, m)
				}
			}
			t.Logf("%s: go list -m all lists %d modules besides the user's own", adapter, len(mods))
		})
	}
}

// tidyUser writes a module that uses the core and adapter from root (by
// replace), tidies it and returns go list -m all.
func tidyUser(t *testing.T, root, adapter string) []string {
	t.Helper()
	dir := t.TempDir()
	adapterMod := core + "/adapters/" + adapter
	gomod := "module example.com/user\n\ngo 1.26.8\n\n" +
		"require (\n\t" + core + " v0.0.0-00010101000000-000000000000\n\t" + adapterMod + " v0.0.0-00010101000000-000000000000\n)\n\n" +
		"replace (\n\t" + core + " => " + root + "\n\t" + adapterMod + " => " + filepath.Join(root, "adapters", adapter) + "\n)\n"
	main := "package main\n\nimport (\n\t\"context\"\n\t\"fmt\"\n\n\t\"" + core + "\"\n\t_ \"" + adapterMod + "\"\n)\n\n" +
		"func main() { fmt.Println(messaging.Open(context.Background(), \"" + adapter + "://127.0.0.1\")) }\n"
	for name, text := range map[string]string{"go.mod": gomod, "main.go": main} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, dir, "go", "mod", "tidy")
	run(t, dir, "go", "build", "./...")
	out := run(t, dir, "go", "list", "-m", "-f", "{{.Path}}", "all")
	return strings.Fields(out)[1:] // without the user's module
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
