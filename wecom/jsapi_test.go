package wecom

import "testing"

// WeCom's own example in "JS-SDK 签名算法": the same inputs give its signature,
// and a #fragment is not signed.
func TestJSSign_OfficialExample(t *testing.T) {
	const ticket = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
	for _, u := range []string{"http://mp.weixin.qq.com?params=value", "http://mp.weixin.qq.com?params=value#/sidebar"} {
		if got := JSSign(ticket, "Wm3WZYTPz0wzccnW", 1414587457, u); got != "0f9de62fce790f9a083d5c99e95740ceb90c27ed" {
			t.Errorf("JSSign(%q) = %s", u, got)
		}
	}
}
