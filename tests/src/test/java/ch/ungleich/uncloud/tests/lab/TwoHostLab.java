package ch.ungleich.uncloud.tests.lab;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * Two libvirt hosts on one L2 segment, like two hypervisors on one switch, plus an observer:
 *
 * <pre>
 *   netns P-a: br0 198.51.100.1/24 -- ports: P-ula (underlay), P-obsp (observer), vnetN (VMs)
 *   netns P-b: br0 198.51.100.2/24 -- ports: P-ulb (underlay), vnetN (VMs)
 *   P-ula &lt;-veth-&gt; P-ulb                     (one L2 segment across both bridges)
 *   netns P-obs: P-obs0 198.51.100.200/24 2001:db8:0:1::200/64, MAC 02:00:00:75:63:c8,
 *                veth peer P-obsp is a port of A's br0 (never a VM tap, never filtered)
 * </pre>
 *
 * Each host is a {@link LibvirtHost} with --listen on its br0 address (migration_host), host UUIDs
 * differ. The observer ({@link Observer}) records from creation on. Create with {@link #create},
 * install hooks on {@link #a()}/{@link #b()} if wanted, then {@link #start()}.
 */
public final class TwoHostLab implements AutoCloseable {
  public static final String BRIDGE = "br0";
  public static final String IP_A = "198.51.100.1";
  public static final String IP_B = "198.51.100.2";
  public static final String OBS4 = "198.51.100.200";
  public static final String OBS6 = "2001:db8:0:1::200";
  public static final String OBS_MAC = "02:00:00:75:63:c8";
  /** The hosts' br0 MACs (fixed, see {@link #build}). */
  public static final String BRIDGE_MAC_A = "02:00:00:75:63:a1";
  public static final String BRIDGE_MAC_B = "02:00:00:75:63:b2";

  private final String prefix;
  private final Path dir;
  private final List<String> netnsCreated = new ArrayList<>();
  private LibvirtHost a;
  private LibvirtHost b;
  private Observer observer;
  private GuestImage image;
  private boolean closed;
  private int maxDowntimeMs;

  private TwoHostLab(String prefix, Path dir) {
    this.prefix = prefix;
    this.dir = dir;
  }

  /**
   * Builds the guest image (cached), both hosts (daemons not started), the segment and the observer.
   *
   * @param prefix namespace/interface prefix of the calling test (e.g. "ucm"); at most 9 chars
   */
  public static TwoHostLab create(String prefix) {
    if (prefix.length() > 9) {
      throw new IllegalArgumentException("prefix too long for 15-char interface names: " + prefix);
    }
    TwoHostLab lab;
    try {
      lab = new TwoHostLab(prefix, Files.createTempDirectory(Path.of("/tmp"), prefix + "-lab-"));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    try {
      lab.build();
      return lab;
    } catch (RuntimeException e) {
      lab.close();
      throw e;
    }
  }

  private void build() {
    image = GuestImage.ensure();
    a = LibvirtHost.create(prefix + "-a", prefix + "-a", dir.resolve("a"), "a1a1a1a1-7563-4d61-8000-00000000000a", IP_A);
    netnsCreated.add(a.netns());
    b = LibvirtHost.create(prefix + "-b", prefix + "-b", dir.resolve("b"), "b2b2b2b2-7563-4d62-8000-00000000000b", IP_B);
    netnsCreated.add(b.netns());
    String obs = prefix + "-obs";
    LibvirtHost.removeStaleNetns(obs);
    Cmd.run("ip", "netns", "add", obs).check();
    netnsCreated.add(obs);
    Cmd.run("ip", "link", "add", prefix + "-ula", "netns", a.netns(), "type", "veth", "peer", "name", prefix + "-ulb",
        "netns", b.netns()).check();
    Cmd.run("ip", "link", "add", prefix + "-obsp", "netns", a.netns(), "type", "veth", "peer", "name", prefix + "-obs0",
        "netns", obs).check();
    for (LibvirtHost h : List.of(a, b)) {
      String ul = prefix + (h == a ? "-ula" : "-ulb");
      // A fixed bridge MAC: a bridge without one takes its lowest port's MAC, and changes it when a port
      // joins. The underlay veth's MAC is random; when it is above the guest tap's fe:54:00:.. (about 1
      // run in 100), B's br0 takes the tap's MAC as the guest migrates in, which is also the MAC of the
      // guest's tap on A: A then delivers its frames to B locally and the migration connection times out.
      // No STP delay; no multicast snooping: every port sees all multicast (NDP, MLD) deterministically.
      h.ip("link", "add", BRIDGE, "address", h == a ? BRIDGE_MAC_A : BRIDGE_MAC_B, "type", "bridge", "stp_state", "0",
          "forward_delay", "0", "mcast_snooping", "0");
      h.ip("link", "set", ul, "master", BRIDGE);
      h.ip("link", "set", ul, "up");
      h.ip("addr", "add", h.listenAddress() + "/24", "dev", BRIDGE);
      h.ip("link", "set", BRIDGE, "up");
      // bridged IP through the inet hooks (br_netfilter), where the inbound rules of uc:ingress and
      // uc:egress decide; a new namespace starts with 1 on this kernel, a lab does not rely on that
      // (br_netfilter is built in here, a module on Debian's own kernel)
      h.exec("sh", "-c", "[ -d /proc/sys/net/bridge ] || modprobe br_netfilter;"
          + " echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables; echo 1 > /proc/sys/net/bridge/bridge-nf-call-ip6tables")
          .check();
    }
    a.ip("link", "set", prefix + "-obsp", "master", BRIDGE);
    a.ip("link", "set", prefix + "-obsp", "up");
    String o0 = prefix + "-obs0";
    Cmd.run("ip", "-n", obs, "link", "set", "lo", "up").check();
    Cmd.run("ip", "-n", obs, "link", "set", o0, "address", OBS_MAC).check();
    Cmd.run("ip", "-n", obs, "addr", "add", OBS4 + "/24", "dev", o0).check();
    Cmd.run("ip", "-n", obs, "addr", "add", OBS6 + "/64", "dev", o0, "nodad").check();
    Cmd.run("ip", "-n", obs, "link", "set", o0, "up").check();
    observer = Observer.start(obs, o0, dir.resolve("observer.log"), dir);
  }

  /** Writes a per-namespace sysctl in host h ({@code key} under /proc/sys, e.g. net/netfilter/nf_conntrack_tcp_loose). */
  public static void sysctl(LibvirtHost h, String key, int value) {
    h.exec("sh", "-c", "echo " + value + " > /proc/sys/" + key).check();
  }

  /** Starts libvirtd on A, then on B (B reuses the qemu capabilities A probed). */
  public void start() {
    a.start();
    b.start();
  }

  public LibvirtHost a() {
    return a;
  }

  public LibvirtHost b() {
    return b;
  }

  public Observer observer() {
    return observer;
  }

  public GuestImage image() {
    return image;
  }

  public Path dir() {
    return dir;
  }

  /** Namespaces this lab created (hosts, observer). */
  public List<String> netns() {
    return List.copyOf(netnsCreated);
  }

  /** The lab's standard guest (name P-vm1), probing the observer every intervalMs. */
  public LabGuest guest(int intervalMs) {
    return new LabGuest(prefix + "-vm1", "75636d76-6d31-4000-8000-000000000001", "52:54:00:75:63:01",
        "198.51.100.100/24", "2001:db8:0:1::100/64", "2001:db8:1234::1", OBS4, OBS6, OBS_MAC,
        "198.51.100.66", "2001:db8:0:1::66", "198.51.100.67", "52:54:00:66:66:66", intervalMs, false);
  }

  /** The guest's serial console file (shared by both hosts: same path before and after migration). */
  public Path console(LabGuest g) {
    return dir.resolve(g.name() + "-console.log");
  }

  /** Defines (persistent) and starts the guest on host h; returns virsh start's wall time in ms. */
  public long defineAndStart(LibvirtHost h, LabGuest g, String metadata) {
    try {
      Path xml = dir.resolve(g.name() + ".xml");
      Files.writeString(xml, g.domainXml(image, BRIDGE, console(g), metadata));
      h.virsh("define", xml.toString()).check();
      // define probed the lab's emulator: let the other host reuse that (migration destination)
      h.saveQemuCaps();
      (h == a ? b : a).seedQemuCaps();
      long t0 = System.nanoTime();
      h.virsh("start", g.name()).check();
      return (System.nanoTime() - t0) / 1_000_000;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** One migration: wall time window (epoch ns, comparable with observer frames) and virsh output. */
  public record Migration(long startNs, long endNs, Cmd.Result result) {
    public double seconds() {
      return (endNs - startNs) / 1e9;
    }
  }

  /**
   * Max downtime migrate() asks qemu for (virsh migrate-setmaxdowntime on the source before each
   * migration); 0 = qemu's default (300 ms).
   */
  public void maxDowntimeMs(int ms) {
    maxDowntimeMs = ms;
  }

  /**
   * Live-migrates DOM with --persistent --undefinesource: managed (virsh drives both daemons,
   * qemu stream to the destination's br0 address) or --p2p (the source libvirtd connects to the
   * destination over TCP). Does not check the result.
   */
  public Migration migrate(String dom, LibvirtHost from, LibvirtHost to, boolean p2p, String... extra) {
    List<String> argv = new ArrayList<>(List.of("virsh", "-c", from.uri(), "migrate", "--live", "--persistent",
        "--undefinesource"));
    argv.addAll(List.of(extra));
    if (p2p) {
      argv.addAll(List.of("--p2p", dom, to.tcpUri()));
    } else {
      argv.addAll(List.of(dom, to.uri(), "--migrateuri", "tcp://" + to.listenAddress()));
    }
    if (maxDowntimeMs > 0) {
      from.virsh("migrate-setmaxdowntime", dom, String.valueOf(maxDowntimeMs)).check();
    }
    long t0 = Observer.nowNs();
    Cmd.Result r = Cmd.run(argv, null, null, 180);
    return new Migration(t0, Observer.nowNs(), r);
  }

  /** Tears everything down (hosts, observer, namespaces, work dir); idempotent. */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    RuntimeException first = null;
    for (AutoCloseable c : new AutoCloseable[] {a, b, observer}) {
      try {
        if (c != null) {
          c.close();
        }
      } catch (Exception e) {
        first = first != null ? first : new IllegalStateException("teardown: " + e, e);
      }
    }
    for (String ns : netnsCreated) {
      Cmd.run("ip", "netns", "del", ns);
    }
    if (!Boolean.getBoolean("uncloud.lab.keep")) {
      GuestImage.deleteTree(dir);
    }
    if (first != null) {
      throw first;
    }
  }

  /** Process IDs this lab ever started (libvirtds, qemus, observer). */
  public List<Long> pids() {
    List<Long> p = new ArrayList<>();
    for (LibvirtHost h : List.of(a, b)) {
      p.addAll(h.daemonPids());
      p.addAll(h.qemuPidsSeen());
    }
    p.add(observer.pid());
    return p;
  }

  /**
   * What a closed lab left behind: its namespaces, live processes among {@code pids}, any process
   * whose command line or mount table mentions the lab's directory, the directory itself. Empty =
   * clean.
   */
  public List<String> leftovers(List<Long> pids) {
    List<String> left = new ArrayList<>();
    String ns = Cmd.run("ip", "netns", "list").out();
    for (String n : netnsCreated) {
      if (ns.lines().anyMatch(l -> l.split(" ")[0].equals(n))) {
        left.add("netns " + n);
      }
    }
    for (long p : pids) {
      ProcessHandle.of(p).filter(ProcessHandle::isAlive).ifPresent(ph -> left.add("process " + p + " " + ph.info().command().orElse("?")));
    }
    String d = dir.toString();
    try (Stream<Path> procs = Files.list(Path.of("/proc"))) {
      for (Path proc : procs.filter(p -> p.getFileName().toString().matches("[0-9]+")).toList()) {
        if (proc.getFileName().toString().equals(String.valueOf(ProcessHandle.current().pid()))) {
          continue;
        }
        try {
          String cmd = new String(Files.readAllBytes(proc.resolve("cmdline")), StandardCharsets.UTF_8).replace('\0', ' ');
          if (cmd.contains(d)) {
            left.add("process " + proc.getFileName() + ": " + cmd);
          }
          if (Files.readString(proc.resolve("mountinfo")).contains(d)) {
            left.add("mount in " + proc.getFileName() + "'s namespace under " + d);
          }
        } catch (IOException e) {
          // process gone meanwhile
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    if (Files.exists(dir) && !Boolean.getBoolean("uncloud.lab.keep")) {
      left.add("directory " + dir);
    }
    return left;
  }
}
