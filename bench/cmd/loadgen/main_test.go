package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/bench/internal/loadgen"
	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/internal/testenv"
)

func TestFlags(t *testing.T) {
	for _, c := range []struct {
		name  string
		args  []string
		env   string // PARLEY_TOKEN_SECRET
		check func(t *testing.T, o *options)
	}{
		{"idle is an alias", []string{"-idle", "-url", "http://127.0.0.1:1"}, "", func(t *testing.T, o *options) {
			require.Equal(t, loadgen.ScenarioIdle, o.cfg.Scenario)
			require.Equal(t, 100, o.cfg.Conns)
		}},
		{"group sizes its own connections", []string{"-scenario", "group", "-groups", "3", "-members", "20"}, "", func(t *testing.T, o *options) {
			require.Zero(t, o.cfg.Conns)
			require.Equal(t, 3, o.cfg.Groups)
		}},
		{"channel posts 10/s unless told", []string{"-scenario", "channel", "-online", "5"}, "", func(t *testing.T, o *options) {
			require.Zero(t, o.cfg.Conns, "the online members")
			require.Zero(t, o.cfg.Members, "100,000 once the run fills its defaults")
			require.Equal(t, 5, o.cfg.Online)
			require.Equal(t, 10.0, o.cfg.Rate)
			require.Equal(t, loadgen.ChannelBroadcast, o.cfg.ChannelMode)
		}},
		{"channel at a rate", []string{"-scenario", "channel", "-rate", "0", "-channel-mode", "open", "-database-url",
			"postgres://127.0.0.1:5432/parley"}, "", func(t *testing.T, o *options) {
			require.Zero(t, o.cfg.Rate)
			require.Equal(t, loadgen.ChannelOpen, o.cfg.ChannelMode)
			require.Equal(t, "postgres://127.0.0.1:5432/parley", o.cfg.DatabaseURL)
		}},
		{"pids", []string{"-node-pid", "12", "-node-pid", "34"}, "", func(t *testing.T, o *options) {
			require.Equal(t, []int{12, 34}, o.cfg.NodePIDs)
		}},
		{"secret from the environment", []string{"-scenario", "idle"}, "from-env", func(t *testing.T, o *options) {
			require.Equal(t, "from-env", o.cfg.TokenSecret)
		}},
		{"metrics URLs", []string{"-metrics", "http://127.0.0.1:8180/metrics, http://127.0.0.1:8181/metrics", "-metrics",
			"http://127.0.0.1:8182/metrics", "-admin-token", "tok"}, "", func(t *testing.T, o *options) {
			require.Equal(t, []string{"http://127.0.0.1:8180/metrics", "http://127.0.0.1:8181/metrics",
				"http://127.0.0.1:8182/metrics"}, o.cfg.MetricsURLs)
			require.Equal(t, "tok", o.cfg.MetricsToken)
		}},
		{"steady sampling", []string{"-sample-every", "10s", "-warmup", "90s"}, "", func(t *testing.T, o *options) {
			require.Equal(t, 10*time.Second, o.cfg.SampleEvery)
			require.Equal(t, 90*time.Second, o.cfg.Warmup)
		}},
		{"defaults", nil, "", func(t *testing.T, o *options) {
			require.Zero(t, o.cfg.SampleEvery, "no sampling unless asked")
			require.Equal(t, 2*time.Minute, o.cfg.Warmup)
			require.Equal(t, loadgen.ScenarioDM, o.cfg.Scenario)
			require.Zero(t, o.cfg.Procs, "chosen from the connections")
			require.Equal(t, -1, o.cfg.SrcIPs, "chosen from the connections")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("PARLEY_TOKEN_SECRET", c.env)
			o, err := parseFlags(c.args)
			require.NoError(t, err)
			c.check(t, o)
		})
	}
	_, err := parseFlags([]string{"-node-pid", "nope"})
	require.ErrorContains(t, err, "not a pid")

	t.Setenv("PARLEY_ADMIN_TOKEN", "admin-from-env")
	o, err := parseFlags(nil)
	require.NoError(t, err)
	require.Equal(t, "admin-from-env", o.cfg.MetricsToken, "the admin token from the environment")
}

// TestIdleInChildProcesses runs the command: 60 idle connections over two worker
// processes with minted tokens; no account is made, and the node's pid is found
// from its port.
func TestIdleInChildProcesses(t *testing.T) {
	const secret = "cmd-loadgen-test-secret-0123456789abcdef"
	n := testenv.StartNode(t, testenv.DatabaseURL(t), "", "PARLEY_TOKEN_SECRET="+secret)
	dir := t.TempDir()
	bin := filepath.Join(dir, "loadgen")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	prefix := testenv.Name("lgcmd")
	jsonPath := filepath.Join(dir, "r.json")
	cmd := exec.CommandContext(testenv.Context(t, 2*time.Minute), bin, "-url", n.URL, "-idle", "-conns", "60",
		"-procs", "2", "-src-ips", "2", "-duration", "1s", "-node-pid", "auto", "-users-prefix", prefix, "-json", jsonPath)
	cmd.Env = append(os.Environ(), "PARLEY_TOKEN_SECRET="+secret)
	out, err = cmd.CombinedOutput()
	t.Logf("%s", out)
	require.NoError(t, err)

	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var res loadgen.Result
	require.NoError(t, json.Unmarshal(b, &res))
	require.Equal(t, loadgen.ScenarioIdle, res.Scenario)
	require.Equal(t, 2, res.Procs)
	require.True(t, res.MintedAuth)
	require.Equal(t, 60, res.SetupUp)
	require.Equal(t, 60, res.ConnsUp)
	require.Zero(t, res.Errors, "%v", res.FirstErrors)
	require.Positive(t, res.SetupRate)
	require.NotNil(t, res.Node)
	require.Len(t, res.Node.PIDs, 1)
	require.Positive(t, res.Node.Connected.RSSKiB)
	require.Positive(t, res.Loadgen.CPUSec, "the workers' CPU time, summed")
	require.Zero(t, res.Loadgen.FramesIn, "an idle connection receives nothing while it is held")

	// Idle connections need no account: none was registered.
	signer, err := auth.NewSigner([]byte(secret), time.Hour)
	require.NoError(t, err)
	token, err := signer.Issue(prefix+"-0-0", "probe")
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodGet, n.URL+"/v1/users/"+prefix+"-0-0", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	var apiErr *client.APIError
	require.ErrorAs(t, client.Do(req, nil), &apiErr)
	require.Equal(t, http.StatusNotFound, apiErr.Status)
}

// TestChannelInChildProcesses runs the command's channel scenario over two
// worker processes: the owner's worker adds the other's members, and each
// worker times post to delivery by the wall clock across processes.
func TestChannelInChildProcesses(t *testing.T) {
	const secret = "cmd-loadgen-test-secret-0123456789abcdef"
	yaml := "auth:\n  bcryptCost: 4\nlimits:\n  userSends: {burst: 0}\npresence:\n  deadAfter: 10m\n"
	n := testenv.StartNode(t, testenv.DatabaseURL(t), yaml, "PARLEY_TOKEN_SECRET="+secret)
	dir := t.TempDir()
	bin := filepath.Join(dir, "loadgen")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)

	jsonPath := filepath.Join(dir, "r.json")
	cmd := exec.CommandContext(testenv.Context(t, 2*time.Minute), bin, "-url", n.URL, "-scenario", "channel",
		"-members", "30", "-online", "10", "-procs", "2", "-duration", "2s", "-drain", "10s", "-node-pid", "auto",
		"-users-prefix", testenv.Name("lgch"), "-json", jsonPath)
	cmd.Env = append(os.Environ(), "PARLEY_TOKEN_SECRET="+secret)
	out, err = cmd.CombinedOutput()
	t.Logf("%s", out)
	require.NoError(t, err)

	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var res loadgen.Result
	require.NoError(t, json.Unmarshal(b, &res))
	require.Equal(t, loadgen.ScenarioChannel, res.Scenario)
	require.Equal(t, 2, res.Procs)
	require.Equal(t, 30, res.Members)
	require.Zero(t, res.Errors, "%v", res.FirstErrors)
	require.NotNil(t, res.Channel)
	require.Equal(t, 10, res.Channel.Followers)
	require.True(t, res.Channel.MarkerAcked)
	require.Positive(t, res.Acked)
	require.Equal(t, 10*res.Acked, res.Expected)
	require.Equal(t, res.Expected, res.Delivered)
	require.Zero(t, res.Lost)
	require.Zero(t, res.Duplicates)
	require.Equal(t, res.Delivered, res.DeliveryLatency.Count)
	require.Positive(t, res.DeliveryLatency.P50Ms)
	require.Less(t, res.DeliveryLatency.MaxMs, 5000.0, "one clock in every process")
	require.Positive(t, res.Node.CPUPerDeliveredUs)
}
