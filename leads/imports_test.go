package leads

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/jobs"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

// importing is a service whose imports run on a started runner.
func importing(t *testing.T, db *qsql.DB) (*Service, *jobs.Runner) {
	s := New(db, nil, nil, quiet)
	run := jobs.NewRunner(db, "test", time.Minute, quiet)
	run.Register(JobImport, s.RunImport)
	s.SetJobs(run)
	run.Start(1)
	t.Cleanup(func() { run.Stop(context.Background()) })
	return s, run
}

// runImport imports a file and waits for its job.
func runImport(t *testing.T, s *Service, run *jobs.Runner, file []byte, mapping map[string]string, encoding string) (ImportResult, *Import) {
	t.Helper()
	ctx := context.Background()
	im, err := s.CreateImport(ctx, "ww1", 1, "leads.csv", bytes.NewReader(file), mapping, encoding)
	if err != nil {
		t.Fatal(err)
	}
	var job jobs.JobRow
	waitFor(t, "the import", func() bool {
		job, err = run.Get(ctx, "ww1", im.JobID)
		return err == nil && (job.Status == jobs.JobDone || job.Status == jobs.JobFailed || job.Status == jobs.JobCancelled)
	})
	if job.Status != jobs.JobDone {
		why := ""
		if job.Error != nil {
			why = *job.Error
		}
		t.Fatalf("import job %s: %s", job.Status, why)
	}
	var res ImportResult
	if err := json.Unmarshal(job.Result, &res); err != nil {
		t.Fatal(err)
	}
	im, _ = s.ImportOf(ctx, "ww1", im.ID)
	return res, im
}

func TestImport_StreamsAFileWithInvalidAndDuplicateLinesAndReportsThem(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s, run := importing(t, db)
		ctx := context.Background()
		// An existing person the file will meet by email.
		known, err := s.Upsert(ctx, "ww1", 0, "", PersonIn{Name: "Known", Email: "known@qq.com"})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.WriteString("\ufeff")
		w := csv.NewWriter(&buf)
		w.Write([]string{"姓名", "手机", "邮箱", "公司"})
		var rejected, duplicates int64
		for i := range 1000 {
			mobile := fmt.Sprintf("139%08d", 10000000+i)
			switch {
			case i%20 == 0: // 5%: nothing to go on
				w.Write([]string{fmt.Sprint("无号码 ", i), "", "", "Acme"})
				rejected++
				continue
			case i%10 == 5: // 10%: the person of the line before
				mobile = fmt.Sprintf("139%08d", 10000000+i-1)
				duplicates++
			}
			w.Write([]string{fmt.Sprint("客户 ", i), mobile, "", "=HYPERLINK(\"x\")"})
		}
		// A line joining the file's first person (by mobile) and the known one (by email).
		w.Write([]string{"Joined", "13910000001", "KNOWN@qq.com", ""})
		w.Flush()
		mapping := map[string]string{"姓名": "name", "手机": "mobile", "邮箱": "email", "公司": "company"}
		// A mapping naming a column the file lacks is refused before anything runs.
		if _, err := s.CreateImport(ctx, "ww1", 1, "x.csv", bytes.NewReader(buf.Bytes()), map[string]string{"电话": "mobile"}, "auto"); err == nil {
			t.Fatal("a mapping of a missing column was accepted")
		} else if ae, ok := apperr.As(err); !ok || ae.Fields["mapping.电话"] == "" {
			t.Fatalf("error %v does not name the column", err)
		}
		res, im := runImport(t, s, run, buf.Bytes(), mapping, "auto")
		if im.Encoding != "utf-8" || res.Lines != 1001 || res.Rejected != rejected || rejected != 50 || duplicates != 100 || res.Merged != 1 ||
			res.Updated != duplicates+1 || res.Created != 1000-rejected-duplicates {
			t.Fatalf("import %+v (%s)", res, im.Encoding)
		}
		var report bytes.Buffer
		if err := s.WriteImportReport(ctx, "ww1", im.ID, &report); err != nil {
			t.Fatal(err)
		}
		lines, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(report.String(), "\ufeff"))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		outcomes := map[string]int{}
		for _, l := range lines[1:] {
			outcomes[l[1]]++
		}
		if outcomes[LineRejected] != 50 || outcomes[LineMerged] != 1 || lines[1][0] != "2" {
			t.Fatalf("report outcomes %v, first %v", outcomes, lines[1])
		}
		var merge Merge
		for _, l := range lines[1:] {
			if l[1] == LineMerged && l[0] != "1002" {
				t.Fatalf("the merge is on line %s, want 1002", l[0])
			}
		}
		ms, _ := s.store.mergesOf(ctx, "ww1", known.Person.ID)
		if len(ms) != 1 {
			t.Fatalf("merges of the known person: %+v", ms)
		}
		merge = ms[0]
		if _, err := s.Unmerge(ctx, "ww1", merge.ID, 1); err != nil {
			t.Fatal(err)
		}
		if p, _ := s.Person(ctx, "ww1", known.Person.ID); p.MergedInto != 0 || fmt.Sprint(p.Identities) != "[{email known@qq.com}]" {
			t.Fatalf("the known person after unmerge: %+v", p)
		}
		// Cells that would run as formulas are stored as text and escaped on export.
		if CSVCell(`=HYPERLINK("x")`) != `'=HYPERLINK("x")` {
			t.Fatal("formula not escaped")
		}
	})
}

func TestImport_GBKFilesAsExcelWritesThem(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s, run := importing(t, db)
		ctx := context.Background()
		gbk, err := simplifiedchinese.GBK.NewEncoder().String("姓名,手机,地区\r\n李雷,13912345679,上海\r\n韩梅梅,13912345680,北京\r\n")
		if err != nil {
			t.Fatal(err)
		}
		res, im := runImport(t, s, run, []byte(gbk), map[string]string{"姓名": "name", "手机": "mobile", "地区": "region"}, "auto")
		if im.Encoding != "gbk" || res.Created != 2 {
			t.Fatalf("gbk import %+v %s", res, im.Encoding)
		}
		ls, _ := s.List(ctx, ListFilter{CorpID: "ww1", Viewer: all, Limit: 10})
		if len(ls) != 2 || ls[0].Name != "李雷" || ls[0].Source != SourceImport {
			t.Fatalf("leads %+v", ls)
		}
		p, _ := s.Person(ctx, "ww1", ls[1].PersonID)
		if p.Region != "北京" {
			t.Fatalf("region %q", p.Region)
		}
	})
}

// An import creates the lines of new people a batch at a time. Each person
// must still get their own line (name, title, company, identities, budget,
// one "created" entry), whatever ids the server hands out; lines that meet
// a person (earlier in the file, in the same batch, or stored before) update
// them in the file's order; a company like an older one is proposed once.
func TestImport_NewPeopleAreCreatedTogetherEachFromTheirOwnLine(t *testing.T) {
	check := func(t *testing.T, db *qsql.DB) {
		s, run := importing(t, db)
		ctx := context.Background()
		known, err := s.Upsert(ctx, "ww1", 0, "", PersonIn{Name: "Known", Email: "known@qq.com", Company: "腾讯科技（深圳）有限公司"})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		w.Write([]string{"姓名", "手机", "邮箱", "公司", "职位", "预算"})
		const n = 120 // more than a batch on SQLite (importBatch/10)
		companies := []string{"Acme Ltd.", "Globex 有限公司", "腾讯科技", "", "Initech Labs"}
		for i := range n {
			company := companies[i%len(companies)]
			w.Write([]string{fmt.Sprint("客户 ", i), fmt.Sprintf("137%08d", i), "", company, fmt.Sprint("title ", i), fmt.Sprint(i * 1000)})
		}
		w.Write([]string{"客户 7 again", "13700000007", "", "", "", ""})                // the same batch's person 7
		w.Write([]string{"", "", "known@qq.com", "", "CTO", ""})                      // a person stored before
		w.Write([]string{"Later", "13799999999", "later@qq.com", "Acme Ltd", "", ""}) // new, with a company of the file
		w.Write([]string{"客户 11 email", "13700000011", "c11@qq.com", "", "", ""})     // person 11 of the same batch, and a new email
		w.Write([]string{"Initech person", "13788888888", "", "Initech", "", ""})     // new, with a new company like one of the file's
		w.Write([]string{"客户 9's email", "", "c9@qq.com", "", "", ""})                // new: no one has this email
		w.Write([]string{"客户 9 joined", "13700000009", "C9@qq.com", "", "", ""})      // person 9 and the line before: merged
		w.Flush()
		mapping := map[string]string{"姓名": "name", "手机": "mobile", "邮箱": "email", "公司": "company", "职位": "title", "预算": "budget"}
		res, _ := runImport(t, s, run, buf.Bytes(), mapping, "utf-8")
		if res.Lines != n+7 || res.Rejected != 0 || res.Created != n+3 || res.Updated != 4 || res.Merged != 1 {
			t.Fatalf("import %+v", res)
		}
		for i := range n {
			owners, err := s.store.identityOwners(ctx, db, "ww1", []Identity{{IdentityMobile, fmt.Sprintf("+86137%08d", i)}})
			if err != nil {
				t.Fatal(err)
			}
			id := owners[Identity{IdentityMobile, fmt.Sprintf("+86137%08d", i)}]
			p, err := s.Person(ctx, "ww1", id)
			if err != nil {
				t.Fatalf("line %d: person %d: %v", i+2, id, err)
			}
			name, company := fmt.Sprint("客户 ", i), companies[i%len(companies)]
			switch i {
			case 7:
				name = "客户 7 again"
			case 9: // the oldest of the two people the line joined survives, renamed
				name = "客户 9 joined"
			case 11:
				name = "客户 11 email"
			}
			if p.Name != name || p.Title != fmt.Sprint("title ", i) || p.Company != company {
				t.Fatalf("line %d made %+v", i+2, p)
			}
			if want := map[bool]int{true: 2, false: 1}[i == 9 || i == 11]; len(p.Identities) != want {
				t.Fatalf("line %d: identities %v", i+2, p.Identities)
			}
			var lead struct {
				ID     int64  `db:"id"`
				Budget string `db:"budget"`
			}
			if err := db.GetContext(ctx, &lead, db.Rebind(`SELECT id, budget FROM leads WHERE corp_id = ? AND person_id = ?`), "ww1", id); err != nil {
				t.Fatalf("line %d: lead: %v", i+2, err)
			}
			_, history, err := s.Get(ctx, "ww1", lead.ID, all)
			if err != nil {
				t.Fatal(err)
			}
			created := 0
			for _, h := range history {
				if h.Kind == HistoryCreated {
					created++
				}
			}
			if lead.Budget != fmt.Sprint(i*1000) || created != 1 {
				t.Fatalf("line %d: lead %+v with %d created entries: %+v", i+2, lead, created, history)
			}
		}
		if p, _ := s.Person(ctx, "ww1", known.Person.ID); p.Title != "CTO" || p.Name != "Known" {
			t.Fatalf("the known person: %+v", p)
		}
		// 腾讯科技 is like the known person's company, Initech like Initech
		// Labs: of each pair the newer is proposed, once.
		reviews, err := s.CompanyReviews(ctx, "ww1")
		var pairs []string
		for _, r := range reviews {
			pairs = append(pairs, r.Company+" → "+r.Similar)
		}
		slices.Sort(pairs)
		if err != nil || fmt.Sprint(pairs) != "[Initech → Initech Labs 腾讯科技 → 腾讯科技（深圳）有限公司]" {
			t.Fatalf("company reviews %q %v", pairs, err)
		}
		var stored int
		if err := db.GetContext(ctx, &stored, db.Rebind(`SELECT COUNT(*) FROM companies WHERE corp_id = ?`), "ww1"); err != nil || stored != 6 {
			t.Fatalf("%d companies (%v), want 6", stored, err)
		}
	}
	sqltest.Each(t, check)
	// MySQL 8's default auto-increment lock mode (2), Galera and TiDB do
	// not give a multi-row insert consecutive ids: an increment of 2 does
	// the same here.
	t.Run("mysql, ids not consecutive", func(t *testing.T) {
		if os.Getenv("QIFLOW_TEST_MYSQL_DSN") == "" {
			t.Skip("QIFLOW_TEST_MYSQL_DSN is not set: the MySQL run is skipped")
		}
		db := sqltest.OpenMySQLWith(t, map[string]string{"auto_increment_increment": "2"})
		if db.ConsecutiveIDs() {
			t.Fatal("an increment of 2 was taken for consecutive ids")
		}
		check(t, db)
	})
}
