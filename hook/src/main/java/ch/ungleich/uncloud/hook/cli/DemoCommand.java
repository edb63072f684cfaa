package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.demo.DemoLab;
import ch.ungleich.uncloud.hook.demo.DemoScenario;
import ch.ungleich.uncloud.hook.demo.DemoScenario.Probe;
import ch.ungleich.uncloud.hook.demo.DemoScenario.Vm;
import ch.ungleich.uncloud.hook.demo.Frames;
import ch.ungleich.uncloud.hook.demo.RawSocket;
import java.io.File;
import java.io.PrintWriter;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code uncloud-hook demo}: the real hook on a throwaway lab, no VM images needed. Builds network
 * namespaces (a bridge with two "VMs" and an uplink), runs the hook for both VMs as libvirt would,
 * sends legitimate and spoofed frames from the VMs through raw sockets, and prints what reached the
 * uplink and the drop counters. Everything is removed at the end, on failure and on Ctrl-C.
 */
@Command(
    name = "demo",
    mixinStandardHelpOptions = true,
    description = {
      "Shows the hook at work in throwaway network namespaces (root; needs ip and nft, no VM images):",
      "two VMs on a bridge, one spoofing; prints which frames reached the uplink and the drop counters."
    })
public final class DemoCommand implements Runnable {
  private static final String INSTALLED_JAR = "/usr/lib/uncloud-hook/uncloud-hook.jar";
  private static final String INSTALLED_HOOK = "/usr/lib/uncloud-hook/libvirt-hook";

  @Spec CommandSpec spec;

  @Option(
      names = "--prefix",
      paramLabel = "NAME",
      description = "Prefix of the network namespaces (default: ucdemo-<pid>).")
  String prefix;

  @Option(names = "--debug", description = "Print stack traces on errors.")
  boolean debug;

  @Override
  public void run() {
    PrintWriter out = spec.commandLine().getOut();
    String p = prefix != null ? prefix : "ucdemo-" + ProcessHandle.current().pid();
    if (!p.matches("[a-z0-9][a-z0-9-]{0,30}")) {
      throw new UncloudException(ExitCodes.USAGE, "--prefix must be lower case letters, digits and '-'");
    }
    if (!"root".equals(System.getProperty("user.name"))) {
      throw new UncloudException(ExitCodes.USAGE, "demo needs root (it creates network namespaces): sudo uncloud-hook demo");
    }
    List<String> hook = hookCommand();
    List<Vm> vms = List.of(DemoScenario.VM1, DemoScenario.VM2);
    DemoLab lab = new DemoLab(p);
    Thread onCtrlC =
        new Thread(
            () -> {
              lab.close();
              System.err.println("uncloud-hook demo: interrupted; removed " + String.join(", ", lab.namespaces()));
            },
            "demo-cleanup");
    Runtime.getRuntime().addShutdownHook(onCtrlC);
    try {
      lab.build(vms);
      out.printf("lab: netns %s (bridge %s: vm1 on vnet0, vm2 on vnet1, uplink0), %s, %s, %s%n",
          lab.ns("hv"), DemoLab.BRIDGE, lab.ns("vm1"), lab.ns("vm2"), lab.ns("up"));
      out.printf("hook: %s%n%n", String.join(" ", hook));
      Path config = lab.writeConfig();
      for (Vm vm : vms) {
        for (String[] op : new String[][] {{"prepare", "begin"}, {"start", "begin"}}) {
          call(out, lab, hook, config, vm, op[0], op[1]);
        }
      }
      out.println();

      List<Probe> probes = DemoScenario.probes();
      TreeSet<Integer> seen = new TreeSet<>();
      try (RawSocket uplink = RawSocket.open(lab.ns("up"), "eth0", true);
          RawSocket s1 = RawSocket.open(lab.ns("vm1"), "eth0", false);
          RawSocket s2 = RawSocket.open(lab.ns("vm2"), "eth0", false)) {
        for (Probe probe : probes) {
          (probe.from() == DemoScenario.VM1 ? s1 : s2).send(probe.frame());
        }
        for (byte[] f : uplink.receive(300)) {
          int id = Frames.markerId(f, f.length);
          if (id > 0) {
            seen.add(id);
          }
        }
      }
      Map<String, Long> drops = new LinkedHashMap<>();
      for (Vm vm : vms) {
        drops.put(vm.tap(), lab.drops(vm.tap()));
      }
      out.print(DemoScenario.table(probes, seen, drops));
      out.println();

      for (Vm vm : vms) {
        call(out, lab, hook, config, vm, "stopped", "end");
        call(out, lab, hook, config, vm, "release", "end");
      }
      boolean gone = vms.stream().allMatch(vm -> lab.drops(vm.tap()) < 0);
      out.printf("after stopped/release: %s%n", gone ? "both port chains removed" : "PORT CHAINS LEFT");
      int good = DemoScenario.asExpected(probes, seen);
      if (good != probes.size() || !gone) {
        throw new UncloudException(
            ExitCodes.APPLY_FAILED, "demo: " + (probes.size() - good) + " frame(s) not as expected" + (gone ? "" : ", rules left"));
      }
    } finally {
      lab.close();
      try {
        Runtime.getRuntime().removeShutdownHook(onCtrlC);
      } catch (IllegalStateException alreadyShuttingDown) {
        // Ctrl-C: the hook runs (or ran) the same close
      }
      out.printf("cleaned up: %s and %s%n", String.join(", ", lab.namespaces()), lab.dir());
      out.flush();
    }
  }

  private static void call(PrintWriter out, DemoLab lab, List<String> hook, Path config, Vm vm, String op, String sub) {
    DemoLab.HookCall c = lab.hook(hook, config, vm.name(), op, sub, vm.domainXml(DemoLab.BRIDGE));
    out.printf("  hook %-8s %-13s exit %d  %4d ms%n", vm.name(), c.op(), c.exit(), c.millis());
    if (c.exit() != 0) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, "hook " + vm.name() + " " + c.op() + " failed: " + c.stderr());
    }
  }

  /**
   * The installed libvirt hook launcher when this is the installed jar (the exact command libvirt
   * runs, with its JVM flags and CDS archive), otherwise this JVM with this jar and {@code hook}.
   */
  private static List<String> hookCommand() {
    String jar;
    try {
      jar = new File(DemoCommand.class.getProtectionDomain().getCodeSource().getLocation().toURI()).getPath();
    } catch (URISyntaxException | SecurityException e) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, "cannot find my own jar: " + e.getMessage());
    }
    if (jar.equals(INSTALLED_JAR) && new File(INSTALLED_HOOK).canExecute()) {
      return List.of(INSTALLED_HOOK);
    }
    if (!jar.endsWith(".jar")) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, "demo runs the hook from a jar; this runs from " + jar);
    }
    String java = ProcessHandle.current().info().command().orElse("java");
    return new ArrayList<>(List.of(java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xshare:auto",
        "-Xlog:disable", "-Xlog:all=warning:stderr", "-jar", jar, "hook"));
  }
}
