package wecom

import "github.com/silenceper/wechat/v2/credential"

// TokenSource satisfies silenceper's token handle, so an SDK client can
// share Qiflow's tokens. Checked here rather than in the package, whose
// import of credential would link silenceper's cache backends (go-redis v8,
// memcache) into the server.
var _ credential.AccessTokenContextHandle = (*TokenSource)(nil)
