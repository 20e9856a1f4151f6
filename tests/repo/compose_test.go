package repo_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// imageFacts is what an image variant ships, as its Dockerfile and
// documentation say (no Docker engine runs where the tests run, so this
// table is the reference; update it with the image tag).
type imageFacts struct {
	shell    bool     // has /bin/sh (CMD-SHELL healthchecks need one)
	binaries []string // commands on PATH (or absolute paths) a healthcheck may run
	dataDir  string   // where the server keeps its data, as configured below
}

var images = map[string]imageFacts{
	// nats:2 is FROM scratch: the server binary and nothing else, so no
	// healthcheck command can run in it. Listed to document why it is not used.
	"nats:2": {binaries: []string{"nats-server"}, dataDir: "/data"},
	// nats:2-alpine: alpine with busybox (sh, wget, nc); runs as root; the
	// store dir is what -sd says (the compose file passes /data).
	"nats:2-alpine": {shell: true, binaries: []string{"nats-server", "wget", "nc", "sh"}, dataDir: "/data"},
	// redis:7 (Debian): WORKDIR and VOLUME /data, where AOF and RDB files go.
	"redis:7": {shell: true, binaries: []string{"redis-server", "redis-cli", "sh"}, dataDir: "/data"},
	// apache/kafka: Kafka under /opt/kafka, bash; the image creates
	// /var/lib/kafka/data (owned by its user, declared a VOLUME), but its
	// default log.dirs is /tmp/kraft-combined-logs: KAFKA_LOG_DIRS must name
	// the volume's directory.
	"apache/kafka:3.9.1": {shell: true, binaries: []string{"/opt/kafka/bin/kafka-broker-api-versions.sh", "/opt/kafka/bin/kafka-topics.sh", "bash", "sh"}, dataDir: "/var/lib/kafka/data"},
	// rabbitmq:4-management (Ubuntu): rabbitmq-diagnostics and rabbitmqctl;
	// RABBITMQ_MNESIA_BASE and the rest under /var/lib/rabbitmq.
	"rabbitmq:4-management": {shell: true, binaries: []string{"rabbitmq-diagnostics", "rabbitmqctl", "sh"}, dataDir: "/var/lib/rabbitmq"},
}

// readmeServices maps the README's environment variables to compose services.
var readmeServices = map[string]string{
	"MESSAGING_NATS_URL":      "nats",
	"MESSAGING_REDIS_URL":     "redis",
	"MESSAGING_KAFKA_BROKERS": "kafka",
	"MESSAGING_AMQP_URL":      "rabbitmq",
}

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
		Environment map[string]string `yaml:"environment"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// TestComposeFile checks the invariants of docker-compose.yml that make
// `docker compose up -d --wait` pass and the tests find the brokers: every
// healthcheck runs a command its image has, the published ports are the
// README's, and each named volume is where its image keeps data.
func TestComposeFile(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatal(err)
	}
	if len(cf.Services) != len(readmeServices) {
		t.Errorf("%d services, want %d (one per broker)", len(cf.Services), len(readmeServices))
	}
	for name, svc := range cf.Services {
		facts, ok := images[svc.Image]
		if !ok {
			t.Errorf("%s: image %q is not in this test's table: add what it ships", name, svc.Image)
			continue
		}
		// Healthcheck: the command exists in the image.
		hc := svc.Healthcheck.Test
		if len(hc) < 2 {
			t.Errorf("%s: no healthcheck (docker compose up --wait needs one)", name)
		} else {
			var bin string
			switch hc[0] {
			case "CMD":
				bin = hc[1]
			case "CMD-SHELL":
				if !facts.shell {
					t.Errorf("%s: CMD-SHELL healthcheck, but %s has no shell", name, svc.Image)
				}
				bin = strings.Fields(hc[1])[0]
			default:
				t.Errorf("%s: healthcheck test %v: want CMD or CMD-SHELL", name, hc)
			}
			if bin != "" && !slices.Contains(facts.binaries, bin) {
				t.Errorf("%s: healthcheck runs %q, which %s does not have (it has %v)", name, bin, svc.Image, facts.binaries)
			}
		}
		// Volumes: each named volume is mounted at the image's data dir.
		for _, v := range svc.Volumes {
			vol, target, _ := strings.Cut(v, ":")
			target, _, _ = strings.Cut(target, ":")
			if _, ok := cf.Volumes[vol]; !ok {
				t.Errorf("%s: volume %q is not declared", name, vol)
			}
			if target != facts.dataDir {
				t.Errorf("%s: volume %s mounted at %s, but %s keeps its data in %s", name, vol, target, svc.Image, facts.dataDir)
			}
		}
		if len(svc.Volumes) == 0 {
			t.Errorf("%s: no volume for %s", name, facts.dataDir)
		}
		switch {
		case strings.HasPrefix(svc.Image, "apache/kafka:"):
			// The image writes to /tmp/kraft-combined-logs unless told.
			if got := svc.Environment["KAFKA_LOG_DIRS"]; got != facts.dataDir {
				t.Errorf("%s: KAFKA_LOG_DIRS=%q, want %q (the volume's directory)", name, got, facts.dataDir)
			}
		case strings.HasPrefix(svc.Image, "nats:"):
			if i := slices.Index(svc.Command, "-sd"); i < 0 || i+1 >= len(svc.Command) || svc.Command[i+1] != facts.dataDir {
				t.Errorf("%s: command %v does not put the JetStream store in %s", name, svc.Command, facts.dataDir)
			}
		}
	}

	// Ports: every broker of the README's table is published on the port
	// its example shows, by the service that runs that broker.
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| [^|]+ \\| `(MESSAGING_[A-Z_]+)` \\| `([^`]+)` \\|")
	rows := row.FindAllStringSubmatch(string(readme), -1)
	if len(rows) != len(readmeServices) {
		t.Fatalf("README's broker table has %d rows, want %d", len(rows), len(readmeServices))
	}
	port := regexp.MustCompile(`127\.0\.0\.1:(\d+)`)
	for _, r := range rows {
		name, ok := readmeServices[r[1]]
		if !ok {
			t.Errorf("README variable %s has no service in this test's table", r[1])
			continue
		}
		m := port.FindStringSubmatch(r[2])
		if m == nil {
			t.Errorf("README example %s for %s has no 127.0.0.1:PORT", r[2], r[1])
			continue
		}
		want := m[1] + ":" + m[1]
		if !slices.Contains(cf.Services[name].Ports, want) {
			t.Errorf("%s: ports %v do not publish %s (README: %s=%s)", name, cf.Services[name].Ports, want, r[1], r[2])
		}
	}
	if adv := cf.Services["kafka"].Environment["KAFKA_ADVERTISED_LISTENERS"]; !strings.Contains(adv, "127.0.0.1:9092") {
		t.Errorf("kafka advertises %q: clients given 127.0.0.1:9092 would be sent elsewhere", adv)
	}
}
