package procname

import "testing"

func TestName(t *testing.T) {
	tests := []struct {
		name     string
		env      Env
		fallback string
		want     string
	}{
		{name: "explicit", env: Env{Process: "web.1", ProcessType: "x", PodName: "y-0"}, want: "web.1"},
		{name: "statefulset ordinal", env: Env{ProcessType: "db", PodName: "db-2"}, want: "db.2"},
		{name: "deployment suffix", env: Env{ProcessType: "web", PodName: "web-7d9f8c6b5-x2k4q"}, want: "web.x2k4q"},
		{name: "pod index wins", env: Env{ProcessType: "worker", PodIndex: "3", PodName: "worker-abc"}, want: "worker.3"},
		{name: "container name", env: Env{Container: "api", PodName: "api-0"}, want: "api.0"},
		{name: "command outside kubernetes", fallback: "/usr/bin/server", want: "server.1"},
		{name: "nothing at all", want: "app.1"},
		{name: "spaces cleaned", env: Env{Process: "my proc"}, want: "my_proc"},
		{name: "pod without dash", env: Env{ProcessType: "w", PodName: "solo"}, want: "w.solo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.env.Name(tt.fallback); got != tt.want {
				t.Errorf("Name() = %q, want %q", got, tt.want)
			}
		})
	}
}
