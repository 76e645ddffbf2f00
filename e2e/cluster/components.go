package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	_ "time/tzdata" // CronJob time zone support, as in the upstream mains

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as upstream
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as upstream
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as upstream
	k8sversion "k8s.io/component-base/version"

	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"

	etcdversion "go.etcd.io/etcd/api/v3/version"

	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodelease "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
	kwokconfig "sigs.k8s.io/kwok/pkg/config"
	kwokconsts "sigs.k8s.io/kwok/pkg/consts"
	kwokcmd "sigs.k8s.io/kwok/pkg/kwok/cmd"
	kwoklog "sigs.k8s.io/kwok/pkg/log"
	kwoksignals "sigs.k8s.io/kwok/pkg/utils/signals"
)

// runCobra runs an upstream component command the way its own main does.
func runCobra(cmd *cobra.Command, args []string) int {
	cmd.SetArgs(args)
	return cli.Run(cmd)
}

func runAPIServer(args []string) int {
	return runCobra(apiserverapp.NewAPIServerCommand(), args)
}

func runControllerManager(args []string) int {
	return runCobra(kcmapp.NewControllerManagerCommand(), args)
}

func runScheduler(args []string) int {
	return runCobra(schedulerapp.NewSchedulerCommand(), args)
}

// runKwok mirrors sigs.k8s.io/kwok/cmd/kwok's main.
func runKwok(args []string) int {
	// k8s.io/component-base/version/verflag registers a non-bool --version on
	// pflag.CommandLine at init; cobra merges pflag.CommandLine into every
	// command, and kwok's own bool --version then fails ("trying to get bool
	// value of flag of type version"). kwok needs none of those global flags.
	pflag.CommandLine = pflag.NewFlagSet(os.Args[0], pflag.ExitOnError)

	global := pflag.NewFlagSet("global", pflag.ContinueOnError)
	global.ParseErrorsAllowlist.UnknownFlags = true
	global.Usage = func() {}

	ctx := kwoksignals.SetupSignalContext()
	ctx, logger := kwoklog.InitFlags(ctx, global)
	ctx, err := kwokconfig.InitFlags(ctx, global)
	if err != nil {
		_, _ = os.Stderr.Write([]byte(global.FlagUsages()))
		logger.Error("Init config flags", "err", err)
		return 1
	}

	command := kwokcmd.NewCommand(ctx)
	command.PersistentFlags().AddFlagSet(global)
	command.SetArgs(args)
	if err := command.ExecuteContext(ctx); err != nil {
		logger.Error("Execute exit", "err", err)
		return 1
	}
	return 0
}

// runKwokStages prints kwok's default "fast" stages (what kwokctl configures
// for its clusters): node initialize + heartbeat with lease, pod ready,
// complete and delete. Standalone kwok loads no stages by itself, so this is
// written to a file and passed with --config.
func runKwokStages(_ []string) int {
	docs := []string{
		nodefast.DefaultNodeInit,
		nodelease.DefaultNodeHeartbeatWithLease,
		podfast.DefaultPodReady,
		podfast.DefaultPodComplete,
		podfast.DefaultPodDelete,
	}
	for i, d := range docs {
		if i > 0 {
			fmt.Println("---")
		}
		fmt.Print(strings.TrimRight(d, "\n") + "\n")
	}
	return 0
}

func runVersion(_ []string) int {
	fmt.Printf("kubernetes: %s\n", k8sversion.Get().GitVersion)
	fmt.Printf("etcd:       %s\n", etcdversion.Version)
	fmt.Printf("kwok:       %s\n", kwokconsts.Version)
	return 0
}
