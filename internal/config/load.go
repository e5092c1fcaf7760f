package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load builds the node configuration: [Default], then the YAML file at path
// (path "" means no file), then the environment ([Config.ApplyEnv] with
// [os.LookupEnv]), then [Config.Validate]. Unknown YAML keys are an error.
// A validation failure is returned as Validate returns it.
func Load(path string) (Config, error) {
	c := Default()
	if path != "" {
		if err := c.decodeFile(path); err != nil {
			return Config{}, err
		}
	}
	if err := c.ApplyEnv(os.LookupEnv); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// decodeFile overlays the YAML file at path on c. Keys absent from the file
// keep their current value; an empty file changes nothing.
func (c *Config) decodeFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	if err := c.decode(f); err != nil {
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	return nil
}

// decode overlays one YAML document from r on c, rejecting unknown keys.
func (c *Config) decode(r io.Reader) error {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// ApplyEnv overrides c from environment variables read through lookup
// (normally [os.LookupEnv]). A variable that is set overrides its key even
// when empty (PARLEY_ADMIN_ADDR="" disables the admin listener). Bad numbers
// are reported together, each naming its variable.
//
//	DATABASE_URL         database.url
//	PARLEY_HTTP_ADDR     listen.http
//	PARLEY_ADMIN_ADDR    listen.admin
//	PARLEY_NODE_ID       node.id
//	PARLEY_CLUSTER_HOST  cluster.host
//	PARLEY_CLUSTER_PORT  cluster.port
//	PARLEY_CLUSTER_PROVIDER  cluster.provider
//	PARLEY_CLUSTER_TLS_CERT  cluster.tls.cert
//	PARLEY_CLUSTER_TLS_KEY   cluster.tls.key
//	PARLEY_CLUSTER_TLS_CA    cluster.tls.ca
//	PARLEY_AUTOMANAGED_PORT  cluster.automanaged.port
//	PARLEY_AUTOMANAGED_PEERS cluster.automanaged.peers (comma-separated)
//	PARLEY_ZK_SERVERS        cluster.zookeeper.servers (comma-separated)
//	PARLEY_TOKEN_SECRET  auth.tokenSecret
//	PARLEY_PREVIOUS_TOKEN_SECRET auth.previousTokenSecret
//	PARLEY_TOKEN_SECRET_FILE     auth.tokenSecretFile
//	PARLEY_ADMIN_TOKEN   admin.token
//	PARLEY_ADMIN_PPROF   admin.pprof (true or false)
//	PARLEY_LOG_LEVEL     log.level
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) error {
	strs := []struct {
		name string
		dst  *string
	}{
		{"DATABASE_URL", &c.Database.URL},
		{"PARLEY_HTTP_ADDR", &c.Listen.HTTP},
		{"PARLEY_ADMIN_ADDR", &c.Listen.Admin},
		{"PARLEY_CLUSTER_HOST", &c.Cluster.Host},
		{"PARLEY_CLUSTER_PROVIDER", &c.Cluster.Provider},
		{"PARLEY_CLUSTER_TLS_CERT", &c.Cluster.TLS.Cert},
		{"PARLEY_CLUSTER_TLS_KEY", &c.Cluster.TLS.Key},
		{"PARLEY_CLUSTER_TLS_CA", &c.Cluster.TLS.CA},
		{"PARLEY_TOKEN_SECRET", &c.Auth.TokenSecret},
		{"PARLEY_PREVIOUS_TOKEN_SECRET", &c.Auth.PreviousTokenSecret},
		{"PARLEY_TOKEN_SECRET_FILE", &c.Auth.TokenSecretFile},
		{"PARLEY_ADMIN_TOKEN", &c.Admin.Token},
		{"PARLEY_LOG_LEVEL", &c.Log.Level},
		{"PARLEY_PUSH_WEBHOOK_SECRET", &c.Push.Webhook.Secret},
		{"PARLEY_PUSH_FCM_CREDENTIALS", &c.Push.FCM.CredentialsFile},
		{"PARLEY_PUSH_APNS_KEY", &c.Push.APNs.KeyFile},
		{"PARLEY_PUSH_VAPID_PRIVATE_KEY", &c.Push.WebPush.PrivateKey},
	}
	for _, s := range strs {
		if v, ok := lookup(s.name); ok {
			*s.dst = v
		}
	}
	ints := []struct {
		name string
		dst  *int
	}{
		{"PARLEY_NODE_ID", &c.Node.ID},
		{"PARLEY_CLUSTER_PORT", &c.Cluster.Port},
		{"PARLEY_AUTOMANAGED_PORT", &c.Cluster.Automanaged.Port},
	}
	lists := []struct {
		name string
		dst  *[]string
	}{
		{"PARLEY_AUTOMANAGED_PEERS", &c.Cluster.Automanaged.Peers},
		{"PARLEY_ZK_SERVERS", &c.Cluster.ZooKeeper.Servers},
	}
	for _, l := range lists {
		if v, ok := lookup(l.name); ok {
			*l.dst = splitList(v)
		}
	}
	var errs []error
	if v, ok := lookup("PARLEY_ADMIN_PPROF"); ok {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			errs = append(errs, fmt.Errorf("PARLEY_ADMIN_PPROF: %q is not true or false", v))
		}
		c.Admin.Pprof = b
	}
	for _, i := range ints {
		v, ok := lookup(i.name)
		if !ok {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not an integer", i.name, v))
			continue
		}
		*i.dst = n
	}
	return errors.Join(errs...)
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
