package ch.ungleich.uncloud.tests.lab;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * A hypervisor in network namespaces, as the qemu hook sees it:
 *
 * <pre>
 *   {tag}-vm1  eth0 ── vnet0 ┐
 *   {tag}-vm2  eth0 ── vnet1 ┤
 *   ...                      ├─ br0   ({tag}-hv: the hook and nft run here)
 *   {tag}-obs  eth0 ── uplink0 ┤       observer: captures every frame the bridge floods to it
 *   {tag}-inj  eth0 ── uplink1 ┘       injector: a second port that is no VM tap
 * </pre>
 *
 * <p>Bridge-side veth ends carry libvirt's tap names ({@code vnetN}, what the domain XML has in
 * {@code <target dev>}); VM-side ends are {@code eth0} with the VM's MAC. The observer's MAC is
 * never used as a source by any sender, so frames to it (or to multicast/broadcast) are always
 * flooded to the observer; multicast snooping is off so IPv6 multicast floods too. Interface names
 * live inside the namespaces. Namespace names are {@code ucf<pid><tag>-...}: two test runs at once
 * (the lead's and a helper's) never touch each other's labs. {@link #close()} deletes every
 * namespace and the temp dir, also after failures; {@link #create} first removes the namespaces
 * of runs whose JVM is gone (killed mid-test).
 */
public final class NetnsLab implements AutoCloseable {
  /** {@code -Duncloud.lab.prefix=…} gives a helper's runs its own namespace prefix. */
  public static final String PREFIX = System.getProperty("uncloud.lab.prefix", "ucf");
  public static final String OBSERVER_MAC = "52:54:00:00:00:fe";
  public static final String INJECTOR_MAC = "52:54:00:00:00:fd";
  public static final String BRIDGE = "br0";
  private static final String PATH = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

  /** A port on br0: the namespace/interface frames are sent from, and its bridge port name. */
  public record Port(String netns, String iface, String bridgePort, String mac) {}

  private final String tag;
  private final String hv;
  private final Port observer;
  private final Port injector;
  private final List<Port> vms = new ArrayList<>();
  private final List<String> namespaces = new ArrayList<>();
  private final Path dir;
  private final Path config;

  private static final java.util.regex.Pattern OURS =
      java.util.regex.Pattern.compile(PREFIX + "(\\d+)[a-z]+-[a-z0-9]+");

  private NetnsLab(String tag) {
    this.tag = PREFIX + ProcessHandle.current().pid() + tag;
    this.hv = this.tag + "-hv";
    this.observer = new Port(this.tag + "-obs", "eth0", "uplink0", OBSERVER_MAC);
    this.injector = new Port(this.tag + "-inj", "eth0", "uplink1", INJECTOR_MAC);
    try {
      this.dir = Files.createTempDirectory(this.tag + "-lab-");
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    this.config = dir.resolve("uncloud-hook.conf");
  }

  /**
   * Builds the lab with one VM namespace per MAC: VM i (0-based) is {@code {tag}-vm{i+1}}, bridge
   * port {@code vnet{i}}.
   *
   * @param tag a few lowercase letters, unique among the labs of one JVM that exist at once
   */
  public static NetnsLab create(String tag, List<String> vmMacs) {
    requireRoot();
    if (!tag.matches("[a-z]{1,8}")) {
      throw new IllegalArgumentException("lab tag must be 1-8 lowercase letters: " + tag);
    }
    removeLeftovers();
    long t0 = System.nanoTime();
    NetnsLab lab = new NetnsLab(tag);
    try {
      lab.build(vmMacs);
      lab.config();
      System.err.printf("lab %s: %d VMs, built in %d ms%n", lab.tag, vmMacs.size(),
          (System.nanoTime() - t0) / 1_000_000);
      return lab;
    } catch (RuntimeException | Error e) {
      lab.close();
      throw e;
    }
  }

  /** {@code count} VMs with MACs 52:54:00:aa:bb:01, :02, ... */
  public static NetnsLab create(String tag, int count) {
    List<String> macs = new ArrayList<>();
    for (int i = 1; i <= count; i++) {
      macs.add(String.format("52:54:00:aa:bb:%02x", i));
    }
    return create(tag, macs);
  }

  /** Deletes lab namespaces whose creating JVM no longer runs. */
  private static void removeLeftovers() {
    String[] names = Path.of("/run/netns").toFile().list();
    if (names == null) {
      return;
    }
    for (String ns : names) {
      java.util.regex.Matcher m = OURS.matcher(ns);
      if (m.matches() && ProcessHandle.of(Long.parseLong(m.group(1))).isEmpty()) {
        Proc.run("ip", "netns", "del", ns);
      }
    }
  }

  private void build(List<String> vmMacs) {
    for (int i = 0; i < vmMacs.size(); i++) {
      vms.add(new Port(tag + "-vm" + (i + 1), "eth0", "vnet" + i, vmMacs.get(i)));
    }
    List<Port> ports = new ArrayList<>(vms);
    ports.add(observer);
    ports.add(injector);
    namespaces.add(hv);
    ports.forEach(p -> namespaces.add(p.netns()));
    // few processes: one `ip -batch` per namespace side instead of one `ip` per setting
    ipBatch(null, namespaces.stream().map(ns -> "netns add " + ns).toList());
    // No IPv6 on the hypervisor side (no DAD/RS/MLD noise from br0). br_netfilter is built into
    // Debian's kernel and per netns defaults to calling iptables, which trims Ethernet padding
    // off IP frames: off here, so every frame arrives byte for byte as sent.
    // (plain sh, not sysctl: procps is not in minimal Debian images; /proc/sys/net is per netns)
    exec(hv, "sh", "-ec", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6;"
        + " echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6;"
        + " for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -e \"$f\" ] && echo 0 > \"$f\"; done;"
        + " true").ok();
    List<String> hvCmds = new ArrayList<>(List.of("link set lo up",
        "link add " + BRIDGE + " type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
        "link set " + BRIDGE + " up"));
    for (Port p : ports) {
      hvCmds.add("link add " + p.bridgePort() + " type veth peer name " + p.iface() + " address "
          + p.mac() + " netns " + p.netns());
      hvCmds.add("link set " + p.bridgePort() + " master " + BRIDGE + " up");
    }
    ipBatch(hv, hvCmds);
    for (Port p : ports) {
      ip("-n", p.netns(), "link", "set", p.iface(), "up");
    }
  }

  /**
   * A port that joins br0 later, as a hot-plugged NIC's tap does: namespace {@code {tag}-hp{n}}
   * with {@code eth0} carrying {@code mac}, its bridge side named {@code bridgePort}.
   */
  public Port addPort(String bridgePort, String mac) {
    Port p = new Port(tag + "-hp" + namespaces.size(), "eth0", bridgePort, mac);
    ip("netns", "add", p.netns());
    namespaces.add(p.netns());
    ipBatch(hv, List.of(
        "link add " + p.bridgePort() + " type veth peer name " + p.iface() + " address " + mac + " netns " + p.netns(),
        "link set " + p.bridgePort() + " master " + BRIDGE + " up"));
    ip("-n", p.netns(), "link", "set", p.iface(), "up");
    return p;
  }

  private static void ipBatch(String netns, List<String> lines) {
    List<String> cmd = new ArrayList<>(List.of("ip"));
    if (netns != null) {
      cmd.addAll(List.of("-n", netns));
    }
    cmd.addAll(List.of("-batch", "-"));
    Proc.run(Duration.ofSeconds(60), String.join("\n", lines) + "\n", cmd).ok();
  }

  private static void ip(String... args) {
    String[] cmd = new String[args.length + 1];
    cmd[0] = "ip";
    System.arraycopy(args, 0, cmd, 1, args.length);
    Proc.run(cmd).ok();
  }

  private static void requireRoot() {
    String uid = Proc.run("id", "-u").ok().out().strip();
    if (!uid.equals("0")) {
      throw new IllegalStateException("the netns lab needs root (uid 0), running as uid " + uid);
    }
  }

  // ------------------------------------------------------------------ accessors

  public String hv() {
    return hv;
  }

  public Port observer() {
    return observer;
  }

  /** A second bridge port that is not a VM tap: frames from here are never filtered. */
  public Port injector() {
    return injector;
  }

  public Port vm(int index) {
    return vms.get(index);
  }

  public List<Port> vms() {
    return List.copyOf(vms);
  }

  public Path dir() {
    return dir;
  }

  public Path configFile() {
    return config;
  }

  public Path logFile() {
    return dir.resolve("hook.log");
  }

  public Path stateDir() {
    return dir.resolve("state");
  }

  // ------------------------------------------------------------------ commands

  /** Runs a command inside a namespace of this lab ({@code ip netns exec}). */
  public Proc.Result exec(String netns, String... cmd) {
    return execIn(netns, null, Duration.ofSeconds(30), cmd);
  }

  public Proc.Result execIn(String netns, String stdin, Duration timeout, String... cmd) {
    List<String> full = new ArrayList<>(List.of("ip", "netns", "exec", netns));
    full.addAll(List.of(cmd));
    return Proc.run(timeout, stdin, full);
  }

  /**
   * Writes the hook's config file: own state_dir and log_file in the lab's temp dir, plus
   * {@code extraLines} ({@code key = value}) which come last and so override.
   */
  public void config(String... extraLines) {
    StringBuilder s = new StringBuilder();
    s.append("# written by NetnsLab\n");
    s.append("backend = nft\n");
    s.append("state_dir = ").append(stateDir()).append('\n');
    s.append("log_file = ").append(logFile()).append('\n');
    s.append("lock_timeout = 60\n");
    s.append("nft = /usr/sbin/nft\n");
    for (String l : extraLines) {
      s.append(l).append('\n');
    }
    try {
      Files.writeString(config, s);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Path of the hook jar, from system property {@code uncloud.jar} (set by tests/pom.xml). */
  public static Path jar() {
    String p = System.getProperty("uncloud.jar");
    if (p == null) {
      throw new IllegalStateException("system property uncloud.jar is not set (run through Maven)");
    }
    Path jar = Path.of(p).toAbsolutePath().normalize();
    if (!Files.isRegularFile(jar)) {
      throw new IllegalStateException("hook jar missing: " + jar + " (mvn -B package first)");
    }
    return jar;
  }

  /**
   * Invokes the hook exactly as libvirt's /etc/libvirt/hooks/qemu does: argv {@code hook DOMAIN OP
   * SUBOP EXTRA}, the domain XML on stdin, a scrubbed environment (libvirt passes only PATH,
   * LC_ALL=C and a few more), the installed launcher's JVM flags, run inside the hypervisor namespace
   * so nft acts there.
   */
  public Proc.Result hook(String domain, String op, String subop, String extra, String xml) {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    long t0 = System.nanoTime();
    List<String> argv = new ArrayList<>(List.of("env", "-i", PATH, "LC_ALL=C", "UNCLOUD_HOOK_CONFIG=" + config, java));
    argv.addAll(InstalledLauncher.jvmFlags());
    argv.addAll(List.of("-jar", jar().toString(), "hook", domain, op, subop, extra));
    Proc.Result r = execIn(hv, xml, Duration.ofSeconds(90), argv.toArray(String[]::new));
    System.err.printf("hook %s %s %s: exit %d, %d ms%n", domain, op, subop, r.exit(),
        (System.nanoTime() - t0) / 1_000_000);
    return r;
  }

  /** The hook call with the XML libvirt passes at that step (with or without {@code <target dev>}). */
  public Proc.Result hook(DomainXml dom, String op, String subop) {
    boolean running = switch (op) {
      case "start", "started", "reconnect", "attach" -> true;
      default -> false; // prepare, stopped, release, migrate, restore: no tap in the XML
    };
    return hook(dom.name(), op, subop, "-", dom.xml(running));
  }

  /** {@code prepare begin} then {@code start begin}, both must exit 0 with empty stdout. */
  public void start(DomainXml dom) {
    mustSucceed(hook(dom, "prepare", "begin"));
    mustSucceed(hook(dom, "start", "begin"));
  }

  /** {@code stopped end} then {@code release end}, both must exit 0 with empty stdout. */
  public void stop(DomainXml dom) {
    mustSucceed(hook(dom, "stopped", "end"));
    mustSucceed(hook(dom, "release", "end"));
  }

  /**
   * Exit 0 and nothing on stdout (libvirt reads the hook's stdout as domain XML on migrate and
   * restore; for every other operation it must stay empty).
   */
  public Proc.Result mustSucceed(Proc.Result r) {
    if (r.exit() != 0 || !r.out().isEmpty()) {
      throw new AssertionError("hook failed or wrote to stdout: " + r.describe()
          + "\n--- hook log\n" + hookLog());
    }
    return r;
  }

  public String hookLog() {
    try {
      return Files.exists(logFile()) ? Files.readString(logFile()) : "(no log file)";
    } catch (IOException e) {
      return "(cannot read log: " + e + ")";
    }
  }

  // ------------------------------------------------------------------ nft

  /** {@code nft ARGS} in the hypervisor namespace. */
  public Proc.Result nft(String... args) {
    String[] cmd = new String[args.length + 1];
    cmd[0] = "nft";
    System.arraycopy(args, 0, cmd, 1, args.length);
    return exec(hv, cmd);
  }

  /** Loads an nft script ({@code nft -f -}) in the hypervisor namespace. */
  public void nftLoad(String script) {
    execIn(hv, script, Duration.ofSeconds(30), "nft", "-f", "-").ok();
  }

  /** Our table as parsed {@code nft -j list table bridge uncloud}; {@link NftTable#absent()} if none. */
  public NftTable table() {
    Proc.Result r = nft("-j", "list", "table", "bridge", "uncloud");
    if (r.exit() != 0) {
      if (r.err().contains("No such file or directory")) {
        return NftTable.absent();
      }
      r.ok();
    }
    return NftTable.parse(r.out());
  }

  /** The whole ruleset of the hypervisor namespace as text, with counters (for messages). */
  public String ruleset() {
    Proc.Result r = nft("list", "ruleset");
    return r.exit() == 0 ? r.out() : r.describe();
  }

  // ------------------------------------------------------------------ teardown

  @Override
  public void close() {
    List<String> errors = new ArrayList<>();
    for (int i = namespaces.size() - 1; i >= 0; i--) {
      String ns = namespaces.get(i);
      if (!Files.exists(Path.of("/run/netns", ns))) {
        continue; // never created (build failed early)
      }
      try {
        Proc.Result r = Proc.run("ip", "netns", "del", ns);
        if (r.exit() != 0) {
          errors.add(r.describe());
        }
      } catch (RuntimeException e) {
        errors.add(ns + ": " + e);
      }
    }
    namespaces.clear();
    try (Stream<Path> s = Files.walk(dir)) {
      s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException e) {
      errors.add("rm " + dir + ": " + e);
    }
    if (!errors.isEmpty()) {
      throw new IllegalStateException("lab teardown: " + String.join("; ", errors));
    }
  }
}
