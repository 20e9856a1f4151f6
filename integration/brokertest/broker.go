package brokertest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging/integration"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Broker says how tests reach one kind of broker. Endpoint tries, in order:
// the environment variable, a container, an in-process server.
type Broker struct {
	// Name is the broker's name in messages ("NATS").
	Name string
	// EnvVar holds the endpoint when set (a URL or host:port list).
	EnvVar string
	// Image is the official image testcontainers starts when Docker answers.
	Image string
	// Port is the container port to map ("4222/tcp").
	Port string
	// Cmd and Env configure the container.
	Cmd []string
	Env map[string]string
	// Wait is the container's readiness check; default: the port listens.
	Wait wait.Strategy
	// Endpoint builds the endpoint from the mapped "host:port".
	FromHostPort func(hostPort string) string
	// InProcess, when not nil, starts a server inside the test process and
	// returns its endpoint. It runs at most once per process; the server lives
	// until the process exits.
	InProcess func() (string, error)

	once     sync.Once
	endpoint string
	source   string
	err      error
}

// Endpoint returns where the broker is, or skips the test with a message
// naming the environment variable (fails instead under
// MESSAGING_REQUIRE_BROKERS=1).
func (b *Broker) Endpoint(t testing.TB) string {
	t.Helper()
	if v := os.Getenv(b.EnvVar); v != "" {
		return v
	}
	b.once.Do(b.discover)
	if b.err != nil {
		msg := fmt.Sprintf("%s unavailable: set %s to its address (%v)", b.Name, b.EnvVar, b.err)
		if os.Getenv(integration.RequireBrokersEnv) == "1" {
			t.Fatalf("%s; %s=1 forbids skipping", msg, integration.RequireBrokersEnv)
		}
		t.Skip(msg)
	}
	return b.endpoint
}

// Source says where Endpoint found the broker ("env", "container",
// "in-process"); empty before the first Endpoint call.
func (b *Broker) Source() string {
	if os.Getenv(b.EnvVar) != "" {
		return "env " + b.EnvVar
	}
	return b.source
}

func (b *Broker) discover() {
	var errs []error
	if b.Image != "" {
		ep, err := b.startContainer()
		if err == nil {
			b.endpoint, b.source = ep, "container "+b.Image
			return
		}
		errs = append(errs, fmt.Errorf("brokertest: container: %w", err))
	}
	if b.InProcess != nil {
		ep, err := b.InProcess()
		if err == nil {
			b.endpoint, b.source = ep, "in-process"
			return
		}
		errs = append(errs, fmt.Errorf("brokertest: in-process: %w", err))
	}
	if len(errs) == 0 {
		errs = append(errs, fmt.Errorf("brokertest: no container image or in-process server configured"))
	}
	b.err = fmt.Errorf("%v", errs)
}

var (
	dockerOnce sync.Once
	dockerErr  error
)

// dockerAvailable reports whether a Docker engine answers.
func dockerAvailable() (err error) {
	dockerOnce.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				dockerErr = fmt.Errorf("brokertest: docker: %v", r)
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cli, err := testcontainers.NewDockerClientWithOpts(ctx)
		if err != nil {
			dockerErr = fmt.Errorf("brokertest: no Docker engine: %w", err)
			return
		}
		_ = cli.Close()
	})
	return dockerErr
}

func (b *Broker) startContainer() (string, error) {
	if err := dockerAvailable(); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	strategy := b.Wait
	if strategy == nil {
		strategy = wait.ForListeningPort(b.Port).WithStartupTimeout(2 * time.Minute)
	}
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithExposedPorts(b.Port),
		testcontainers.WithWaitStrategy(strategy),
	}
	if len(b.Cmd) > 0 {
		opts = append(opts, testcontainers.WithCmd(b.Cmd...))
	}
	if len(b.Env) > 0 {
		opts = append(opts, testcontainers.WithEnv(b.Env))
	}
	// The container lives until the test process exits; testcontainers'
	// reaper removes it then.
	c, err := testcontainers.Run(ctx, b.Image, opts...)
	if err != nil {
		return "", err
	}
	hostPort, err := c.PortEndpoint(ctx, b.Port, "")
	if err != nil {
		return "", err
	}
	return b.FromHostPort(hostPort), nil
}
