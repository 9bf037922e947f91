package leads

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
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
		t.Fatalf("import job %s: %v", job.Status, job.Error)
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
