package ch.ungleich.uncloud.hook.demo;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.nft.ProcessNftRunner;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The demo's throwaway lab (the edge: runs {@code ip}, {@code nft} and the hook): network namespaces
 * {@code <prefix>-hv} (the hypervisor: bridge br0, taps vnet0/vnet1, uplink0), {@code <prefix>-vm1},
 * {@code <prefix>-vm2} (each an eth0 with the VM's MAC) and {@code <prefix>-up} (the router behind
 * the uplink). IPv6 is off in all of them, so that the kernels send nothing of their own and the drop
 * counters count only the demo's frames. {@link #close} removes everything and may run twice (once
 * from the shutdown hook on Ctrl-C).
 */
public final class DemoLab implements AutoCloseable {
  public static final String BRIDGE = "br0";
  private static final Pattern DROP = Pattern.compile("counter packets (\\d+) bytes \\d+ drop");

  private final String prefix;
  private final Path dir;
  private final List<String> namespaces = new ArrayList<>();
  private final List<Process> running = new ArrayList<>();
  private boolean closed;

  public DemoLab(String prefix) {
    this.prefix = prefix;
    try {
      this.dir = Files.createTempDirectory(prefix + "-");
    } catch (IOException e) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, "cannot make a temporary directory: " + e.getMessage());
    }
  }

  public String ns(String role) {
    return prefix + "-" + role;
  }

  public Path dir() {
    return dir;
  }

  /** Builds the namespaces, the bridge, the two VMs and the uplink. */
  public void build(List<DemoScenario.Vm> vms) {
    for (String role : List.of("hv", "up")) {
      addNamespace(ns(role));
    }
    String hv = ns("hv");
    ip("-n", hv, "link", "add", BRIDGE, "type", "bridge");
    ip("-n", hv, "link", "set", BRIDGE, "up");
    int k = 1;
    for (DemoScenario.Vm vm : vms) {
      String vns = ns("vm" + k++);
      addNamespace(vns);
      ip("-n", hv, "link", "add", vm.tap(), "type", "veth", "peer", "name", "eth0", "netns", vns);
      ip("-n", vns, "link", "set", "eth0", "address", vm.mac());
      ip("-n", vns, "link", "set", "eth0", "up");
      ip("-n", hv, "link", "set", vm.tap(), "master", BRIDGE);
      ip("-n", hv, "link", "set", vm.tap(), "up");
    }
    ip("-n", hv, "link", "add", "uplink0", "type", "veth", "peer", "name", "eth0", "netns", ns("up"));
    ip("-n", ns("up"), "link", "set", "eth0", "address", DemoScenario.ROUTER_MAC);
    ip("-n", ns("up"), "link", "set", "eth0", "up");
    ip("-n", hv, "link", "set", "uplink0", "master", BRIDGE);
    ip("-n", hv, "link", "set", "uplink0", "up");
  }

  private void addNamespace(String name) {
    ip("netns", "add", name);
    namespaces.add(name);
    // before any interface exists, so that none gets an IPv6 address or sends RS/MLD/DAD
    run(List.of("ip", "netns", "exec", name, "sh", "-c",
        "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"),
        null, 10);
  }

  /** The hook config for the demo: everything under the temp dir, the real nft. */
  public Path writeConfig() {
    Path conf = dir.resolve("uncloud-hook.conf");
    String text = "backend = nft\nstate_dir = " + dir.resolve("state") + "\nlog_file = " + dir.resolve("hook.log") + "\n";
    try {
      Files.writeString(conf, text, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, "cannot write " + conf + ": " + e.getMessage());
    }
    return conf;
  }

  /** What one hook call did. */
  public record HookCall(String domain, String op, int exit, long millis, String stderr) {}

  /**
   * Runs the hook in the hypervisor namespace exactly as libvirt does: a clean environment (PATH,
   * LC_ALL=C; plus the demo's config), argv {@code DOMAIN OP SUBOP -}, the domain XML on stdin.
   */
  public HookCall hook(List<String> hookCommand, Path config, String domain, String op, String sub, String xml) {
    List<String> cmd = new ArrayList<>(List.of("ip", "netns", "exec", ns("hv"), "env", "-i",
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "UNCLOUD_HOOK_CONFIG=" + config));
    cmd.addAll(hookCommand);
    cmd.addAll(List.of(domain, op, sub, "-"));
    long t0 = System.nanoTime();
    Result r = run(cmd, xml, 60);
    return new HookCall(domain, op + " " + sub, r.exit, (System.nanoTime() - t0) / 1_000_000, r.err.strip());
  }

  /** Packets dropped by the counters of {@code port-<tap>}; -1 when the chain does not exist. */
  public long drops(String tap) {
    Result r = run(List.of("ip", "netns", "exec", ns("hv"), "nft", "list", "chain", "bridge", "uncloud", "port-" + tap),
        null, 20);
    if (r.exit != 0) {
      return -1;
    }
    long n = 0;
    Matcher m = DROP.matcher(r.out);
    while (m.find()) {
      n += Long.parseLong(m.group(1));
    }
    return n;
  }

  /** Removes the namespaces (and with them the bridge, veths and the nft table) and the temp dir. */
  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    for (Process p : running) {
      p.destroyForcibly();
    }
    for (String n : namespaces) {
      try {
        run(List.of("ip", "netns", "del", n), null, 10);
      } catch (UncloudException e) {
        System.err.println("uncloud-hook demo: warning: " + e.getMessage());
      }
    }
    try (Stream<Path> s = Files.walk(dir)) {
      s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException e) {
      System.err.println("uncloud-hook demo: warning: cannot remove " + dir + ": " + e.getMessage());
    }
  }

  public List<String> namespaces() {
    return List.copyOf(namespaces);
  }

  private void ip(String... args) {
    List<String> cmd = new ArrayList<>();
    cmd.add("ip");
    cmd.addAll(List.of(args));
    Result r = run(cmd, null, 10);
    if (r.exit != 0) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, String.join(" ", cmd) + ": " + r.err.strip());
    }
  }

  private record Result(int exit, String out, String err) {}

  private Result run(List<String> cmd, String stdin, int timeoutSeconds) {
    Process p;
    synchronized (this) {
      if (closed && !cmd.get(1).equals("netns")) {
        throw new UncloudException(ExitCodes.APPLY_FAILED, "demo interrupted");
      }
      try {
        p = new ProcessBuilder(cmd).start();
      } catch (IOException e) {
        throw new UncloudException(ExitCodes.APPLY_FAILED, "cannot run " + cmd.get(0) + ": " + e.getMessage());
      }
      running.add(p);
    }
    try {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      ByteArrayOutputStream err = new ByteArrayOutputStream();
      Thread o = ProcessNftRunner.pump(p.getInputStream(), out);
      Thread e = ProcessNftRunner.pump(p.getErrorStream(), err);
      try (OutputStream in = p.getOutputStream()) {
        if (stdin != null) {
          in.write(stdin.getBytes(StandardCharsets.UTF_8));
        }
      } catch (IOException ignored) {
        // the command did not read its stdin; its exit status says what happened
      }
      if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new UncloudException(ExitCodes.APPLY_FAILED, String.join(" ", cmd) + ": no answer in " + timeoutSeconds + " s");
      }
      o.join();
      e.join();
      return new Result(p.exitValue(), out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    } catch (InterruptedException ex) {
      p.destroyForcibly();
      Thread.currentThread().interrupt();
      throw new UncloudException(ExitCodes.APPLY_FAILED, "demo interrupted");
    } finally {
      synchronized (this) {
        running.remove(p);
      }
    }
  }
}
