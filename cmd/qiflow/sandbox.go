package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/qiflow/qiflow/wecom/fake"
)

// sandbox runs the fake WeCom on its own port with the demo corp, for demos
// and load tests against a separately running qiflow.
func sandbox(args []string, stdout, stderr io.Writer) error {
	var callback string
	cfg, _, err := loadConfig("sandbox", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&callback, "callback-url", "", "where the fake posts the demo corp's callbacks (default http://<http-addr>/wecom/callback/<corp>)")
	})
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel, stderr)
	f, err := fake.New(fake.Options{WorldFile: filepath.Join(cfg.DataDir, "sandbox", "world.json"), Log: log})
	if err != nil {
		return err
	}
	base, err := f.Start(cfg.SandboxAddr)
	if err != nil {
		return err
	}
	spec := fake.SandboxCorp
	if callback == "" {
		callback = "http://" + cfg.HTTPAddr + "/wecom/callback/" + spec.ID
	}
	spec.CallbackURL = callback
	f.AddCorp(spec, true)
	f.SetCallbackURL(spec.ID, callback)
	fmt.Fprintf(stdout, `fake WeCom listening on %s (world saved in %s)
callbacks for %s go to %s

Point a qiflow at it with:
  QIFLOW_WECOM_API_BASE=%s QIFLOW_WECOM_CORP_ID=%s QIFLOW_WECOM_SECRET=%s \
  QIFLOW_WECOM_AGENT_ID=%d QIFLOW_WECOM_TOKEN=%s QIFLOW_WECOM_AES_KEY=%s qiflow serve

Control API (JSON):
  POST %s/fake/corps/%s/add            {"userid":"zhangsan","customer":{"name":"Ann"}}
  POST %s/fake/corps/%s/scan           {"config_id":"..."}
  POST %s/fake/corps/%s/delete-follow  {"external_userid":"...","userid":"zhangsan","by":"customer"}
  POST %s/fake/corps/%s/groups         {"owner":"zhangsan","name":"VIP"}
  POST %s/fake/corps/%s/join           {"config_id":"..."}
  GET  %s/fake/corps/%s/messages
  POST %s/fake/faults                  {"endpoint":"user/get","errcode":45009,"count":3}
`, base, filepath.Join(cfg.DataDir, "sandbox", "world.json"), spec.ID, callback,
		base, spec.ID, spec.Secret, spec.AgentID, spec.Token, spec.AESKey,
		base, spec.ID, base, spec.ID, base, spec.ID, base, spec.ID, base, spec.ID, base, spec.ID, base)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return f.Close()
}
