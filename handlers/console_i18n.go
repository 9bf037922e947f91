package handlers

import (
	"fmt"
	"net/url"
)

// messages are the console's texts: Chinese first, English second. A key
// missing here shows as itself (a test checks every key the templates use).
var messages = map[string][2]string{
	"app.name":               {"Qiflow 私域增长", "Qiflow"},
	"nav.home":               {"工作台", "Home"},
	"nav.pool":               {"线索池", "Lead pool"},
	"nav.mine":               {"我的线索", "My leads"},
	"time.overdue":           {"已超时", "overdue"},
	"time.dh":                {"剩 %d 天 %d 小时", "in %dd %dh"},
	"time.hm":                {"剩 %d 小时 %d 分", "in %dh %dm"},
	"time.m":                 {"剩 %d 分钟", "in %dm"},
	"col.sla":                {"SLA 到期", "SLA due"},
	"col.recycle":            {"回收公海", "Back to pool"},
	"lead.title":             {"线索详情", "Lead"},
	"lead.person":            {"联系人", "Person"},
	"lead.identities":        {"身份", "Identities"},
	"lead.company":           {"公司", "Company"},
	"lead.review":            {"待核查", "Needs review"},
	"lead.timeline":          {"时间线", "Timeline"},
	"lead.timeline.none":     {"还没有任何记录。", "Nothing has happened yet."},
	"lead.touch":             {"记录跟进", "Log a follow-up"},
	"lead.touch.text":        {"内容", "What happened"},
	"lead.touch.submit":      {"保存", "Save"},
	"lead.release":           {"放回公海", "Release to the pool"},
	"lead.release.reason":    {"原因", "Reason"},
	"lead.qualify":           {"转为 SQL 并移交销售", "Qualify to SQL and hand to sales"},
	"lead.bant.budget":       {"预算 (Budget)", "Budget"},
	"lead.bant.authority":    {"决策权 (Authority)", "Authority"},
	"lead.bant.need":         {"需求 (Need)", "Need"},
	"lead.bant.timeline":     {"时间 (Timeline)", "Timeline"},
	"lead.handoff.note":      {"移交备注", "Handoff note"},
	"lead.handoff.to":        {"移交给", "Hand to"},
	"lead.handoff.auto":      {"按移交规则分配", "By the handoff rules"},
	"lead.qualify.submit":    {"转为 SQL", "Qualify"},
	"lead.fit":               {"匹配度", "Fit"},
	"lead.claimed_at":        {"认领于", "Claimed"},
	"lead.last_touch":        {"最近跟进", "Last follow-up"},
	"nav.inbox":              {"销售收件箱", "Sales inbox"},
	"menu.lang":              {"语言", "Language"},
	"menu.corp":              {"切换企业", "Switch corp"},
	"menu.logout":            {"退出登录", "Sign out"},
	"menu.switch":            {"切换", "Switch"},
	"login.title":            {"登录", "Sign in"},
	"login.email":            {"邮箱", "Email"},
	"login.password":         {"密码", "Password"},
	"login.submit":           {"登录", "Sign in"},
	"login.missing":          {"请输入邮箱和密码。", "Enter your email and password."},
	"login.bad":              {"邮箱或密码不正确。", "The email or password is not right."},
	"login.limited":          {"登录尝试过多，请几分钟后再试。", "Too many sign-in attempts; try again in a few minutes."},
	"login.first":            {"首次登录：管理员账号（admin@localhost，可用 QIFLOW_ADMIN_EMAIL 指定）的密码在首次启动时写入数据目录的 admin-password.txt。", "First sign-in: the admin's password (admin@localhost unless QIFLOW_ADMIN_EMAIL says otherwise) was written to admin-password.txt in the data directory when Qiflow first started."},
	"home.title":             {"工作台", "Home"},
	"home.slas":              {"SLA 即将到期", "SLA clocks running"},
	"home.slas.none":         {"没有进行中的 SLA。认领线索后，首次跟进的时限会显示在这里。", "No SLA clock is running. Once you claim a lead, its first follow-up's deadline shows here."},
	"home.handoffs":          {"待接收的移交", "Handoffs waiting for you"},
	"home.handoffs.none":     {"没有待接收的移交。SDR 把线索转为 SQL 后会出现在这里。", "No handoff is waiting. When an SDR qualifies a lead to SQL for you, it shows here."},
	"home.recycling":         {"即将回收到公海", "Going back to the pool soon"},
	"home.recycling.none":    {"近两个工作日内没有线索会被回收。", "None of your leads goes back to the pool in the next two working days."},
	"home.dead":              {"死信事件", "Dead letters"},
	"home.dead.count":        {"%d 个事件投递失败，等待重放或忽略。", "%d deliveries gave up and wait for a replay or a dismissal."},
	"home.dead.none":         {"没有死信。", "No dead letters."},
	"home.nothing":           {"你的角色在工作台上没有待办事项。", "Your role has nothing waiting on this page."},
	"col.lead":               {"线索", "Lead"},
	"col.kind":               {"类型", "Kind"},
	"col.due":                {"到期", "Due"},
	"col.at":                 {"时间", "When"},
	"col.note":               {"备注", "Note"},
	"col.stage":              {"阶段", "Stage"},
	"col.grade":              {"等级", "Grade"},
	"col.score":              {"活跃分", "Engagement"},
	"col.source":             {"来源", "Source"},
	"col.channel":            {"渠道", "Channel"},
	"col.owner":              {"负责人", "Owner"},
	"col.status":             {"状态", "Status"},
	"col.created":            {"创建时间", "Created"},
	"col.actions":            {"操作", "Actions"},
	"pool.title":             {"线索池", "Lead pool"},
	"pool.all":               {"全部", "All"},
	"pool.pool":              {"公海", "Pool"},
	"pool.owner":             {"归属", "Owner"},
	"pool.owner.none":        {"未认领", "Unclaimed"},
	"pool.owner.me":          {"我的", "Mine"},
	"pool.filter":            {"筛选", "Filter"},
	"pool.claim":             {"认领", "Claim"},
	"pool.claimed":           {"已认领", "Claimed"},
	"pool.more":              {"加载更多", "Load more"},
	"pool.empty":             {"没有符合条件的线索。放宽筛选条件，或等待新的客户扫码添加。", "No lead matches. Widen the filter, or wait for new customers to scan a code."},
	"inbox.title":            {"销售收件箱", "Sales inbox"},
	"inbox.empty":            {"没有待接收的移交。SDR 把线索转为 SQL 后会出现在这里。", "No handoff is waiting. When an SDR qualifies a lead to SQL for you, it shows here."},
	"inbox.accept":           {"接收", "Accept"},
	"inbox.reject":           {"退回", "Reject"},
	"inbox.reason":           {"退回原因", "Reason to reject"},
	"inbox.accepted":         {"已接收", "Accepted"},
	"inbox.rejected":         {"已退回", "Rejected"},
	"err.internal":           {"出错了，请稍后再试。", "Something went wrong; try again later."},
	"err.csrf":               {"页面已过期，请刷新后重试。", "This page has expired; reload it and try again."},
	"err.forbidden":          {"你的角色（%s）没有 %s 权限。", "Your role (%s) lacks the %s permission."},
	"err.not_member":         {"你不是该企业的成员。", "You are not a member of that corp."},
	"err.not_found":          {"找不到该记录。", "Not found."},
	"nav.imports":            {"导入", "Imports"},
	"imports.title":          {"导入线索", "Import leads"},
	"imports.new":            {"导入 CSV 文件", "Import a CSV file"},
	"imports.hint":           {"选择文件后，为每一列选择对应的字段；手机号、邮箱或 unionid 至少一列。Excel 另存的 GBK 文件也可以。", "Choose the file, then a field for each column; at least one of mobile, email or unionid. GBK files as Excel saves them work too."},
	"imports.encoding":       {"编码", "Encoding"},
	"imports.auto":           {"自动识别", "Detect"},
	"imports.file":           {"文件", "File"},
	"imports.ignore":         {"不导入", "Skip"},
	"imports.bad_encoding":   {"按所选编码无法读取该文件，请换一种编码。", "The file cannot be read in this encoding: choose another."},
	"imports.submit":         {"开始导入", "Import"},
	"imports.recent":         {"最近的导入", "Recent imports"},
	"imports.none":           {"还没有导入。上传一个 CSV 文件开始。", "No import yet. Upload a CSV file to start."},
	"imports.lines":          {"行", "lines"},
	"imports.report":         {"下载报告（被拒绝、合并和待核查的行）", "Download the report (rejected, merged and flagged lines)"},
	"imports.result":         {"共 %d 行：新建 %d，更新 %d，合并 %d，待核查 %d，拒绝 %d。", "%d lines: %d created, %d updated, %d merged, %d flagged, %d rejected."},
	"imports.running":        {"正在导入…", "Importing…"},
	"imports.too_large":      {"文件超过上传上限，请拆分后再导入。", "The file is larger than the upload limit: split it."},
	"status.queued":          {"排队中", "queued"},
	"status.running":         {"进行中", "running"},
	"status.done":            {"已完成", "done"},
	"status.failed":          {"失败", "failed"},
	"status.cancelled":       {"已取消", "cancelled"},
	"status.dead":            {"死信", "dead"},
	"status.dismissed":       {"已忽略", "dismissed"},
	"nav.events":             {"事件", "Events"},
	"nav.jobs":               {"后台任务", "Jobs"},
	"events.title":           {"事件与死信", "Events and dead letters"},
	"events.all":             {"全部", "All"},
	"events.dead":            {"死信", "Dead letters"},
	"events.pending":         {"处理中", "Pending"},
	"events.done":            {"已完成", "Done"},
	"events.empty":           {"没有符合条件的事件。", "No event matches."},
	"events.replay":          {"重放", "Replay"},
	"events.dismiss":         {"忽略", "Dismiss"},
	"events.deliveries":      {"订阅方结果", "Subscribers"},
	"events.older":           {"更早", "Older"},
	"col.type":               {"类型", "Type"},
	"col.subject":            {"对象", "Subject"},
	"jobs.title":             {"后台任务", "Background jobs"},
	"jobs.empty":             {"还没有后台任务。通讯录同步、导入和重新评分会显示在这里。", "No background job yet. Directory syncs, imports and rescoring show here."},
	"jobs.cancel":            {"取消", "Cancel"},
	"jobs.progress":          {"进度", "Progress"},
	"jobs.cancelling":        {"正在取消", "Cancelling"},
	"err.nothing_to_replay":  {"该事件没有可重放的死信。", "The event has no dead letters to replay."},
	"err.nothing_to_dismiss": {"该事件没有可忽略的死信。", "The event has no dead letters to dismiss."},
	"err.already_claimed":    {"该线索刚刚被同事认领了。", "A colleague claimed this lead a moment ago."},
	"err.claim_cap_reached":  {"你已达到该公海的认领上限。", "You hold as many leads, or have claimed as many today, as this pool allows."},
	"err.claim_cooldown":     {"你最近释放过该线索，冷却期未过。", "You released this lead recently; the pool's cool-down has not passed."},
	"err.handoff_answered":   {"该移交已经处理过了。", "This handoff was answered already."},
	"err.not_your_handoff":   {"该移交属于其他销售。", "This handoff is to another sales rep."},
	"err.version_conflict":   {"线索已被修改，请刷新后重试。", "The lead changed meanwhile; reload it and try again."},
}

// translate is key in lang (English for "en", Chinese otherwise), with
// args formatted in.
func translate(lang, key string, args ...any) string {
	m, ok := messages[key]
	if !ok {
		return key
	}
	text := m[0]
	if lang == "en" {
		text = m[1]
	}
	if len(args) > 0 {
		return fmt.Sprintf(text, args...)
	}
	return text
}

// urlPath is the path and query of a URL (a Referer's), without its host.
func urlPath(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	return u.RequestURI(), nil
}
