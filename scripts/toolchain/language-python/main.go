// pulumi-language-python: the Python language host for machines that cannot build Pulumi's own.
//
// Pulumi's host (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) is a module the
// Go proxy our machines reach does not serve, and no prebuilt plugin can be downloaded. This host
// does the two things `pulumi preview/up/refresh/destroy` and `--policy-pack` ask of one, with the
// Python SDK's own entry points: a program runs through pulumi-language-python-exec (shipped in the
// github.com/pulumi/pulumi/sdk/v3 module, copied beside this binary), a policy pack through
// `python -m pulumi.policy`. Python comes from the `virtualenv` runtime option (Pulumi.yaml,
// PulumiPolicy.yaml), else from PATH. Everything else (dependency installation, codegen) is left
// unimplemented: the engine copes, and users with a normal Pulumi install never run this.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	pbempty "google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/grpc"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// version is the Pulumi release whose Python SDK the program pins (set with -ldflags -X).
var version = "0.0.0-dev"

// exitedAfterShowingMessage is the exec script's "I already told the user" exit code.
const exitedAfterShowingMessage = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
	execScript    string
}

func main() {
	args := os.Args[1:]
	for len(args) > 0 && strings.HasPrefix(args[0], "-") { // flags the engine may pass (tracing, logging)
		args = args[1:]
	}
	if len(args) == 0 {
		cmdutil.ExitError("usage: pulumi-language-python [flags] <engine address>")
	}
	self, err := os.Executable()
	if err != nil {
		cmdutil.ExitError(err.Error())
	}
	h := &host{engineAddress: args[len(args)-1],
		execScript: filepath.Join(filepath.Dir(self), "pulumi-language-python-exec")}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
	})
	if err != nil {
		cmdutil.ExitError(err.Error())
	}
	fmt.Printf("%d\n", handle.Port) // the engine reads the port from the first line
	if err := <-handle.Done; err != nil {
		cmdutil.ExitError(err.Error())
	}
}

// python is the interpreter for a program or pack: <root>/<virtualenv>/bin/python when the runtime
// options name a virtualenv, else python3 from PATH; env gets the virtualenv activated.
func python(info *pulumirpc.ProgramInfo, env []string) (string, []string, error) {
	virtualenv := ""
	if info != nil && info.GetOptions() != nil {
		if value, ok := info.GetOptions().AsMap()["virtualenv"].(string); ok {
			virtualenv = value
		}
	}
	if virtualenv == "" {
		return "python3", env, nil
	}
	if !filepath.IsAbs(virtualenv) {
		virtualenv = filepath.Join(info.GetRootDirectory(), virtualenv)
	}
	interpreter := filepath.Join(virtualenv, "bin", "python")
	if _, err := os.Stat(interpreter); err != nil {
		return "", nil, fmt.Errorf("the virtualenv option names %s, which has no bin/python: create it "+
			"(python3 -m venv %s, then pip install -r requirements.txt)", virtualenv, virtualenv)
	}
	activated := []string{"VIRTUAL_ENV=" + virtualenv}
	for _, entry := range env {
		switch {
		case strings.HasPrefix(entry, "PATH="):
			activated = append(activated, "PATH="+filepath.Join(virtualenv, "bin")+":"+entry[len("PATH="):])
		case strings.HasPrefix(entry, "PYTHONHOME="), strings.HasPrefix(entry, "VIRTUAL_ENV="):
		default:
			activated = append(activated, entry)
		}
	}
	return interpreter, activated, nil
}

func orEmpty(config map[string]string) map[string]string {
	if config == nil {
		return map[string]string{}
	}
	return config
}

func program(info *pulumirpc.ProgramInfo) string {
	entry := info.GetEntryPoint()
	if entry == "" {
		entry = "."
	}
	return filepath.Join(info.GetProgramDirectory(), entry)
}

func (h *host) GetPluginInfo(context.Context, *pbempty.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

// Providers are found on PATH (or installed beforehand): nothing to download here.
func (h *host) GetRequiredPlugins(context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *host) GetRequiredPackages(context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	config, err := json.Marshal(orEmpty(req.GetConfig()))
	if err != nil {
		return nil, err
	}
	secretKeys, err := json.Marshal(append([]string{}, req.GetConfigSecretKeys()...))
	if err != nil {
		return nil, err
	}
	interpreter, env, err := python(req.GetInfo(), os.Environ())
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	args := []string{"-u", h.execScript,
		"--monitor", req.GetMonitorAddress(), "--engine", h.engineAddress,
		"--project", req.GetProject(), "--stack", req.GetStack(), "--pwd", req.GetPwd(),
		"--dry_run", strconv.FormatBool(req.GetDryRun()), "--parallel", strconv.Itoa(int(req.GetParallel())),
		"--root_directory", req.GetInfo().GetRootDirectory()}
	if req.GetOrganization() != "" {
		args = append(args, "--organization", req.GetOrganization())
	}
	args = append(append(args, program(req.GetInfo())), req.GetArgs()...)
	cmd := exec.CommandContext(ctx, interpreter, args...)
	cmd.Env = append(env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var exited *exec.ExitError
		if errors.As(err, &exited) {
			if exited.ExitCode() == exitedAfterShowingMessage {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("program exited with non-zero exit code: %d", exited.ExitCode())}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not run the program: %v", err)}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// RunPlugin runs a plugin written in Python; for a policy pack (kind "analyzer") that is the SDK's
// pulumi.policy module with the pack's directory last, as the engine expects.
func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest,
	server grpc.ServerStreamingServer[pulumirpc.RunPluginResponse],
) error {
	interpreter, env, err := python(req.GetInfo(), req.GetEnv())
	if err != nil {
		return err
	}
	var args []string
	if req.GetKind() == "analyzer" {
		args = append(append([]string{"-u", "-m", "pulumi.policy"}, req.GetArgs()...), req.GetInfo().GetProgramDirectory())
	} else {
		args = append([]string{"-u", program(req.GetInfo())}, req.GetArgs()...)
	}
	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()
	cmd := exec.CommandContext(server.Context(), interpreter, args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = req.GetPwd(), env, stdout, stderr
	if err := cmd.Run(); err != nil {
		var exited *exec.ExitError
		if errors.As(err, &exited) {
			return server.Send(&pulumirpc.RunPluginResponse{
				Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(exited.ExitCode())}})
		}
		return fmt.Errorf("could not run the plugin: %w", err)
	}
	return closer.Close()
}
