package ch.ungleich.uncloud.tests.lab;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * One private libvirt "hypervisor": a network namespace of its own, and a libvirtd running in its
 * own mount and UTS namespace with per-host directories bind-mounted over /etc/libvirt, /run,
 * /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt (as shared/labs/two-hosts.sh does), so
 * several run at once and none touches the machine's real libvirt. Its /etc/libvirt is {@link
 * #etc()}: install a hook there ({@link #installHook}) BEFORE {@link #start()}, libvirtd only looks
 * for hooks when it starts.
 *
 * <p>qemu runs as root without security driver, cgroups or private /dev, logs console and stdio to
 * plain files (stdio_handler "file": no virtlogd), no lock manager. With a listen address libvirtd
 * runs with --listen (plain TCP, no auth) and advertises that address as migration_host, which a
 * migration destination needs; without one it only has its unix socket ({@link #uri()}).
 *
 * <p>The daemon is started and stopped by its PID only; {@link #close()} destroys the domains still
 * running, kills qemu processes left over (by the PID files of this host's own run directory),
 * stops libvirtd, deletes the netns and the work directory (kept if -Duncloud.lab.keep=true).
 */
public final class LibvirtHost implements AutoCloseable {
  private static final String QEMU_CAPS_SEED = "qemu-capabilities";

  private final String name;
  private final String netns;
  private final Path dir;
  private final String listenAddress;
  private Process daemon;
  private final List<Long> daemonPids = new ArrayList<>();
  private final List<Long> qemuPidsSeen = new ArrayList<>();
  private boolean closed;

  /**
   * Creates the netns (lo up) and the host's directories and configuration; does not start libvirtd.
   *
   * @param name host name inside its UTS namespace, also used in logs
   * @param netns network namespace to create (must not exist; carry the test's prefix)
   * @param dir work directory to create (etc, run, lib, cache, log below it)
   * @param hostUuid libvirt host_uuid (must differ between migration peers), or null
   * @param listenAddress address for --listen/migration_host, or null for unix socket only
   */
  public static LibvirtHost create(String name, String netns, Path dir, String hostUuid, String listenAddress) {
    LibvirtHost h = new LibvirtHost(name, netns, dir, listenAddress);
    try {
      for (String d : List.of("etc/hooks", "run/libvirt", "lib", "cache/qemu/capabilities", "log")) {
        Files.createDirectories(dir.resolve(d));
      }
      removeStaleNetns(netns);
      Cmd.run("ip", "netns", "add", netns).check();
      Cmd.run("ip", "-n", netns, "link", "set", "lo", "up").check();
      h.writeConfig(hostUuid);
      return h;
    } catch (IOException | RuntimeException e) {
      h.close();
      throw e instanceof IOException io ? new UncheckedIOException(io) : (RuntimeException) e;
    }
  }

  private LibvirtHost(String name, String netns, Path dir, String listenAddress) {
    this.name = name;
    this.netns = netns;
    this.dir = dir;
    this.listenAddress = listenAddress;
  }

  private void writeConfig(String hostUuid) throws IOException {
    StringBuilder d = new StringBuilder();
    if (hostUuid != null) {
      d.append("host_uuid = \"").append(hostUuid).append("\"\n");
    }
    d.append("unix_sock_group = \"root\"\nauth_unix_ro = \"none\"\nauth_unix_rw = \"none\"\n");
    if (listenAddress != null) {
      d.append("listen_tls = 0\nlisten_tcp = 1\nauth_tcp = \"none\"\n");
      d.append("listen_addr = \"").append(listenAddress).append("\"\n");
    }
    d.append("log_filters = \"1:util.hook 1:qemu.qemu_hook 2:qemu.qemu_migration\"\n");
    d.append("log_outputs = \"1:file:/var/log/libvirt/libvirtd.log\"\n");
    Files.writeString(dir.resolve("etc/libvirtd.conf"), d);
    StringBuilder q = new StringBuilder();
    q.append("security_driver = \"none\"\ncgroup_controllers = [ ]\nnamespaces = [ ]\n");
    q.append("stdio_handler = \"file\"\nuser = \"root\"\ngroup = \"root\"\n");
    q.append("dynamic_ownership = 0\nremember_owner = 0\n");
    if (listenAddress != null) {
      // the destination advertises this for the qemu stream (its hostname would not resolve)
      q.append("migration_host = \"").append(listenAddress).append("\"\n");
    }
    Files.writeString(dir.resolve("etc/qemu.conf"), q);
  }

  public String name() {
    return name;
  }

  public String netns() {
    return netns;
  }

  public Path dir() {
    return dir;
  }

  /** This host's /etc/libvirt. */
  public Path etc() {
    return dir.resolve("etc");
  }

  /** libvirtd's log (/var/log/libvirt/libvirtd.log inside the host). */
  public Path libvirtdLog() {
    return dir.resolve("log/libvirtd.log");
  }

  /** qemu's per-domain log (/var/log/libvirt/qemu/DOM.log inside the host). */
  public Path qemuLog(String domain) {
    return dir.resolve("log/qemu/" + domain + ".log");
  }

  public String listenAddress() {
    return listenAddress;
  }

  /** virsh URI of this host's unix socket, usable from the root namespace. */
  public String uri() {
    return "qemu+unix:///system?socket=" + dir.resolve("run/libvirt/libvirt-sock");
  }

  /** URI other libvirtds use to reach this one (peer-to-peer migration); needs a listen address. */
  public String tcpUri() {
    if (listenAddress == null) {
      throw new IllegalStateException(name + " has no listen address");
    }
    return "qemu+tcp://" + listenAddress + "/system";
  }

  /**
   * Copies the machine's stock nwfilter definitions (/etc/libvirt/nwfilter/*.xml: clean-traffic
   * and friends) into this host's /etc/libvirt/nwfilter; libvirtd loads them at its next start.
   */
  public void copySystemNwfilters() {
    try {
      Path dst = Files.createDirectories(etc().resolve("nwfilter"));
      Path src = Path.of("/etc/libvirt/nwfilter");
      if (Files.isDirectory(src)) {
        try (Stream<Path> s = Files.list(src)) {
          for (Path f : s.filter(p -> p.toString().endsWith(".xml")).toList()) {
            Files.copy(f, dst.resolve(f.getFileName()), StandardCopyOption.REPLACE_EXISTING);
          }
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * Deletes a namespace of this test's own prefix left by an earlier run that was killed before
   * its teardown, after stopping the processes still inside it (its libvirtd, qemu, observer). The
   * name carries the caller's prefix, so whatever runs in it was started by an earlier run of the
   * same test.
   */
  public static void removeStaleNetns(String netns) {
    if (Cmd.run("ip", "netns", "list").out().lines().noneMatch(l -> l.split(" ")[0].equals(netns))) {
      return;
    }
    for (String p : Cmd.run("ip", "netns", "pids", netns).out().split("\\s+")) {
      if (p.matches("[0-9]+")) {
        ProcessHandle.of(Long.parseLong(p)).ifPresent(ph -> {
          ph.destroy();
          waitGone(ph);
        });
      }
    }
    Cmd.run("ip", "netns", "del", netns);
  }

  // ------------------------------------------------------------------ hooks

  /** Writes a qemu hook script (mode 0755) to etc/hooks/qemu; effective from the next start. */
  public Path installHook(String script) {
    Path hook = etc().resolve("hooks/qemu");
    try {
      Files.writeString(hook, script);
      Files.setPosixFilePermissions(hook, PosixFilePermissions.fromString("rwxr-xr-x"));
      return hook;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Copies a given launcher file (e.g. the one install/ ships) to etc/hooks/qemu, mode 0755. */
  public Path installHookFile(Path launcher) {
    try {
      return installHook(Files.readString(launcher));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Removes etc/hooks/qemu (effective from the next start). */
  public void removeHook() {
    try {
      Files.deleteIfExists(etc().resolve("hooks/qemu"));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Per-host state dir of the hook (ownership records, lock). */
  public Path hookStateDir() {
    return dir.resolve("hook-state");
  }

  /** Per-host log file of the hook. */
  public Path hookLog() {
    return dir.resolve("hook.log");
  }

  public Path hookConfigPath() {
    return dir.resolve("uncloud-hook.conf");
  }

  /**
   * Writes this host's uncloud-hook config: state_dir and log_file in the host's directory, nft =
   * /usr/sbin/nft, then the given keys (which may override those). Returns its path.
   */
  public Path writeHookConfig(Map<String, String> settings) {
    Map<String, String> all = new LinkedHashMap<>();
    all.put("state_dir", hookStateDir().toString());
    all.put("log_file", hookLog().toString());
    all.put("nft", "/usr/sbin/nft");
    all.putAll(settings);
    StringBuilder sb = new StringBuilder("# uncloud-hook config of lab host " + name + "\n");
    all.forEach((k, v) -> sb.append(k).append(" = ").append(v).append('\n'));
    try {
      Files.writeString(hookConfigPath(), sb);
      return hookConfigPath();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The java running these tests (absolute), for launchers. */
  public static Path currentJava() {
    return Path.of(System.getProperty("java.home"), "bin", "java");
  }

  /**
   * Installs the project's hook: this host's config ({@link #writeHookConfig}) and the launcher
   * {@code install/} installs ({@link InstalledLauncher}) running {@code jar} with {@link
   * #currentJava()}. Effective from the next start.
   */
  public Path installUncloudHook(Path jar, Map<String, String> settings) {
    Path conf = writeHookConfig(settings);
    return installHook(InstalledLauncher.render(currentJava(), jar, conf, dir));
  }

  // ------------------------------------------------------------------ daemon

  public boolean running() {
    return daemon != null && daemon.isAlive();
  }

  /** PID of the running libvirtd. */
  public long pid() {
    if (!running()) {
      throw new IllegalStateException(name + ": libvirtd not running");
    }
    return daemon.pid();
  }

  /** Every libvirtd PID this host ever had (for leak checks). */
  public List<Long> daemonPids() {
    return List.copyOf(daemonPids);
  }

  /**
   * Starts libvirtd in the netns with its own mount/UTS namespace and waits until it answers
   * (first start on a machine probes qemu for ~8 s; later ones reuse a seeded capabilities cache).
   */
  public void start() {
    if (running()) {
      throw new IllegalStateException(name + ": libvirtd already running");
    }
    seedQemuCaps();
    String script =
        String.join(
            "\n",
            "set -e",
            "hostname " + name,
            "mount -n --bind " + dir.resolve("etc") + " /etc/libvirt",
            "mount -n --bind " + dir.resolve("run") + " /run",
            "mkdir -p /run/libvirt",
            "mount -n --bind " + dir.resolve("lib") + " /var/lib/libvirt",
            "mount -n --bind " + dir.resolve("cache") + " /var/cache/libvirt",
            "mount -n --bind " + dir.resolve("log") + " /var/log/libvirt",
            "cd /",
            "exec /usr/sbin/libvirtd" + (listenAddress != null ? " --listen" : ""));
    // ip netns exec, unshare and sh all exec: the process we start becomes libvirtd itself
    ProcessBuilder pb =
        new ProcessBuilder(
            "ip", "netns", "exec", netns,
            "unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script);
    pb.redirectErrorStream(true);
    pb.redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("libvirtd.stdout").toFile()));
    pb.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
    pb.environment().put("LC_ALL", "C");
    try {
      daemon = pb.start();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    daemonPids.add(daemon.pid());
    long deadline = System.nanoTime() + 90_000_000_000L;
    while (true) {
      if (!daemon.isAlive()) {
        throw new IllegalStateException(name + ": libvirtd exited with " + daemon.exitValue() + ": " + tail(dir.resolve("libvirtd.stdout")));
      }
      if (Files.exists(dir.resolve("run/libvirt/libvirt-sock")) && virsh("version").ok()) {
        break;
      }
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException(name + ": libvirtd not answering after 90 s: " + tail(dir.resolve("libvirtd.stdout")));
      }
      sleep(100);
    }
    saveQemuCaps();
  }

  /** SIGTERM to our libvirtd (by PID), waits for it; running qemu processes keep running. */
  public void stop() {
    if (daemon == null) {
      return;
    }
    rememberQemuPids();
    if (daemon.isAlive()) {
      daemon.destroy();
      try {
        if (!daemon.waitFor(20, java.util.concurrent.TimeUnit.SECONDS)) {
          daemon.destroyForcibly();
          daemon.waitFor();
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    daemon = null;
  }

  public void restart() {
    stop();
    start();
  }

  /** virsh -q -c {@link #uri()} ARGS (60 s timeout). */
  public Cmd.Result virsh(String... args) {
    List<String> argv = new ArrayList<>(List.of("virsh", "-q", "-c", uri()));
    argv.addAll(Arrays.asList(args));
    return Cmd.run(argv, null, null, 60);
  }

  /** Runs a command inside this host's network namespace. */
  public Cmd.Result exec(String... argv) {
    return Cmd.run(Cmd.inNetns(netns, argv));
  }

  /** `ip -n NETNS ARGS`, checked. */
  public Cmd.Result ip(String... args) {
    List<String> argv = new ArrayList<>(List.of("ip", "-n", netns));
    argv.addAll(Arrays.asList(args));
    return Cmd.run(argv).check();
  }

  /** Names of running domains. */
  public List<String> runningDomains() {
    Cmd.Result r = virsh("list", "--name");
    return r.ok() ? r.out().lines().map(String::strip).filter(s -> !s.isEmpty()).toList() : List.of();
  }

  /** Names of all domains (running or defined). */
  public List<String> allDomains() {
    Cmd.Result r = virsh("list", "--all", "--name");
    return r.ok() ? r.out().lines().map(String::strip).filter(s -> !s.isEmpty()).toList() : List.of();
  }

  /** PIDs of this host's qemu processes now (from run/libvirt/qemu/*.pid, alive ones only). */
  public List<Long> qemuPids() {
    List<Long> r = new ArrayList<>();
    Path d = dir.resolve("run/libvirt/qemu");
    if (!Files.isDirectory(d)) {
      return r;
    }
    try (Stream<Path> s = Files.list(d)) {
      for (Path p : s.filter(p -> p.toString().endsWith(".pid")).toList()) {
        try {
          long pid = Long.parseLong(Files.readString(p).strip());
          if (isQemu(pid)) {
            r.add(pid);
          }
        } catch (IOException | NumberFormatException e) {
          // pid file being written or removed
        }
      }
    } catch (IOException e) {
      // run dir gone
    }
    return r;
  }

  /** Every qemu PID seen on this host (for leak checks); call after starting domains. */
  public List<Long> qemuPidsSeen() {
    rememberQemuPids();
    return List.copyOf(qemuPidsSeen);
  }

  private void rememberQemuPids() {
    for (long p : qemuPids()) {
      if (!qemuPidsSeen.contains(p)) {
        qemuPidsSeen.add(p);
      }
    }
  }

  private static boolean isQemu(long pid) {
    try {
      return new String(Files.readAllBytes(Path.of("/proc/" + pid + "/cmdline")), StandardCharsets.UTF_8)
          .contains("qemu-system");
    } catch (IOException e) {
      return false;
    }
  }

  // ------------------------------------------------------------------ qemu capabilities seed

  private static Path capsSeed() {
    return GuestImage.cacheRoot().getParent().resolve(QEMU_CAPS_SEED);
  }

  /**
   * Copies the machine-wide seed of libvirt's qemu capabilities cache into this host's cache (files
   * it lacks). libvirt re-probes by itself if a cached file is stale (binary/kernel changed), so
   * this is safe; a running libvirtd picks a file up at its first lookup of that emulator.
   */
  public void seedQemuCaps() {
    Path seed = capsSeed();
    if (!Files.isDirectory(seed)) {
      return;
    }
    try (Stream<Path> s = Files.list(seed)) {
      for (Path f : s.filter(p -> p.toString().endsWith(".xml")).toList()) {
        Path t = dir.resolve("cache/qemu/capabilities").resolve(f.getFileName());
        if (!Files.exists(t)) {
          Files.copy(f, t);
        }
      }
    } catch (IOException e) {
      // no seed: libvirtd probes
    }
  }

  /** Saves this host's qemu capabilities cache as the machine-wide seed (first run: ~8 s per emulator). */
  public void saveQemuCaps() {
    Path seed = capsSeed();
    try (Stream<Path> s = Files.list(dir.resolve("cache/qemu/capabilities"))) {
      Files.createDirectories(seed);
      for (Path f : s.filter(p -> p.toString().endsWith(".xml")).toList()) {
        Path t = seed.resolve(f.getFileName());
        if (Files.exists(t) && Files.mismatch(f, t) == -1) {
          continue;
        }
        Path tmp = Files.createTempFile(seed, ".caps-", ".tmp");
        Files.copy(f, tmp, StandardCopyOption.REPLACE_EXISTING);
        Files.move(tmp, t, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      }
    } catch (IOException e) {
      // only an optimisation
    }
  }

  // ------------------------------------------------------------------ teardown

  /**
   * Destroys running domains, stops libvirtd, kills leftover qemu processes of this host, deletes
   * the netns and the work directory. Idempotent; never throws for things already gone.
   */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    if (running()) {
      rememberQemuPids();
      for (String d : runningDomains()) {
        virsh("destroy", d);
      }
    }
    stop();
    for (long pid : qemuPidsSeen()) {
      ProcessHandle.of(pid).ifPresent(ph -> {
        if (isQemu(pid)) {
          ph.destroy();
          waitGone(ph);
        }
      });
    }
    Cmd.run("ip", "netns", "del", netns);
    if (!Boolean.getBoolean("uncloud.lab.keep")) {
      GuestImage.deleteTree(dir);
    }
  }

  private static void waitGone(ProcessHandle ph) {
    for (int i = 0; i < 100 && ph.isAlive(); i++) {
      sleep(50);
    }
    if (ph.isAlive()) {
      ph.destroyForcibly();
    }
  }

  public static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  public static String tail(Path f) {
    try {
      List<String> l = Files.readAllLines(f);
      return String.join("\n", l.subList(Math.max(0, l.size() - 20), l.size()));
    } catch (IOException e) {
      return "(no " + f + ")";
    }
  }

  @Override
  public String toString() {
    return "LibvirtHost[" + name + " netns=" + netns + " dir=" + dir + "]";
  }
}
