package cluster

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !c.Bootstrap || c.ApplyTimeout != DefaultApplyTimeout || c.Logger == nil {
		t.Fatalf("DefaultConfig = %+v", c)
	}
	// Zero durations mean the defaults.
	if err := (Config{NodeID: "a", DataDir: "d", BindAddr: "127.0.0.1:0"}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	f := func(field string, edit func(*Config)) {
		t.Helper()
		c := DefaultConfig()
		edit(&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("%s: Validate = %v, want ErrInvalidConfig", field, err)
		}
		if !strings.Contains(err.Error(), field+" (") {
			t.Fatalf("%s: error %q does not name the field and its value", field, err)
		}
	}
	f("NodeID", func(c *Config) { c.NodeID = "" })
	f("NodeID", func(c *Config) { c.NodeID = "a b" })
	f("NodeID", func(c *Config) { c.NodeID = strings.Repeat("x", 129) })
	f("DataDir", func(c *Config) { c.DataDir = "" })
	f("BindAddr", func(c *Config) { c.BindAddr = "" })
	f("BindAddr", func(c *Config) { c.BindAddr = "localhost:8082" })
	f("BindAddr", func(c *Config) { c.BindAddr = "127.0.0.1:99999" })
	f("BindAddr", func(c *Config) { c.BindAddr = "0.0.0.0:8082" }) // not advertisable
	f("AdvertiseAddr", func(c *Config) { c.BindAddr = "0.0.0.0:8082"; c.AdvertiseAddr = "10.0.0.1:0" })
	f("ApplyTimeout", func(c *Config) { c.ApplyTimeout = -time.Second })
	f("SnapshotInterval", func(c *Config) { c.SnapshotInterval = time.Millisecond })
	f("HeartbeatTimeout", func(c *Config) { c.HeartbeatTimeout = time.Millisecond })
	f("LeaderLeaseTimeout", func(c *Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout })
	f("ElectionTimeout", func(c *Config) { c.ElectionTimeout = c.HeartbeatTimeout / 2 })
	f("CommitTimeout", func(c *Config) { c.CommitTimeout = -1 })
	f("InitialCluster", func(c *Config) { c.InitialCluster = []Peer{{ID: "other", Addr: "127.0.0.1:9000"}} })
	f("InitialCluster", func(c *Config) {
		c.Bootstrap = false
		c.InitialCluster = []Peer{{ID: c.NodeID, Addr: c.BindAddr}}
	})
	f("InitialCluster[1]", func(c *Config) {
		c.InitialCluster = []Peer{{ID: c.NodeID, Addr: c.BindAddr}, {ID: c.NodeID, Addr: "127.0.0.1:9000"}}
	})
	f("InitialCluster[0].Addr", func(c *Config) { c.InitialCluster = []Peer{{ID: c.NodeID, Addr: "127.0.0.1:9000"}} })
	f("InitialCluster[1].Addr", func(c *Config) {
		c.InitialCluster = []Peer{{ID: c.NodeID, Addr: c.BindAddr}, {ID: "b", Addr: "127.0.0.1:0"}}
	})
	f("InitialCluster[1].ID", func(c *Config) {
		c.InitialCluster = []Peer{{ID: c.NodeID, Addr: c.BindAddr}, {ID: "", Addr: "127.0.0.1:9000"}}
	})

	// Open refuses what Validate refuses.
	c := DefaultConfig()
	c.NodeID = ""
	if _, err := Open(c); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Open with a bad config = %v", err)
	}
}
