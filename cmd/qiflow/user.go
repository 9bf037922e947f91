package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/qiflow/qiflow/auth"
	qsql "github.com/qiflow/qiflow/sql"
)

// user manages users from the command line: add, list, passwd. Passwords
// come from --password-stdin (or a prompt-less first line of stdin), never
// from a flag, so they stay out of shell history and process lists.
func user(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: qiflow user add|list|passwd [flags]")
	}
	sub, args := args[0], args[1:]
	var email, name, role, corp, staff string
	cfg, _, err := loadConfig("user "+sub, args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "the user's email")
		fs.StringVar(&name, "name", "", "display name (add)")
		fs.StringVar(&role, "role", "marketer", "admin, marketer, cs, sdr, sales or csm (add)")
		fs.StringVar(&corp, "corp", "", "corp id (add: required when several corps are configured; list: filter)")
		fs.StringVar(&staff, "staff-userid", "", "the WeCom staff id the user is (add)")
	})
	if err != nil {
		return err
	}
	db, err := qsql.Open(cfg.DB.Driver, cfg.DB.DSN)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := qsql.Migrate(ctx, db, nil); err != nil {
		return err
	}
	svc := auth.New(db)
	switch sub {
	case "add":
		if corp == "" {
			switch {
			case len(cfg.WeCom.Corps) == 1:
				corp = cfg.WeCom.Corps[0].ID
			case cfg.SandboxOn():
				corp = "wwqiflowsandbox01"
			default:
				return errors.New("--corp is required")
			}
		}
		pw, err := readPassword(stdin)
		if err != nil {
			return err
		}
		u, err := svc.CreateUser(ctx, auth.NewUser{Email: email, Name: name, Password: pw, CorpID: corp, Role: auth.Role(role), StaffUserID: staff})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added user %d %s (%s in %s)\n", u.ID, u.Email, role, corp)
	case "list":
		users, err := svc.ListUsers(ctx, corp)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tROLE\tSTAFF")
		for _, u := range users {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", u.ID, u.Email, u.Name, u.Role, u.StaffUserID)
		}
		return tw.Flush()
	case "passwd":
		pw, err := readPassword(stdin)
		if err != nil {
			return err
		}
		if err := svc.SetPassword(ctx, email, pw); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password of %s changed; their sessions are signed out\n", auth.NormalizeEmail(email))
	default:
		return fmt.Errorf("unknown user command %q (add, list, passwd)", sub)
	}
	return nil
}

// stdin is where passwords are read from (tests replace it).
var stdin io.Reader = os.Stdin

// readPassword reads the first line of stdin.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("give the password on stdin, e.g. echo 'secret pass' | qiflow user add --email ...")
	}
	return pw, nil
}
