package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.doctor.Check;
import ch.ungleich.uncloud.hook.doctor.Checks;
import ch.ungleich.uncloud.hook.doctor.Launcher;
import ch.ungleich.uncloud.hook.engine.Reconcile;
import ch.ungleich.uncloud.hook.host.DomainView;
import ch.ungleich.uncloud.hook.host.LinuxHost;
import ch.ungleich.uncloud.hook.libvirt.LibvirtSession;
import ch.ungleich.uncloud.hook.metadata.PolicyBuilder;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.model.NicPolicy;
import ch.ungleich.uncloud.hook.nft.NftBackend;
import ch.ungleich.uncloud.hook.nft.NftGuard;
import ch.ungleich.uncloud.hook.nft.NftJson;
import ch.ungleich.uncloud.hook.nft.NftRunner;
import ch.ungleich.uncloud.hook.nft.NftScript;
import ch.ungleich.uncloud.hook.nft.NftState;
import ch.ungleich.uncloud.hook.nft.ProcessNftRunner;
import ch.ungleich.uncloud.hook.nft.ReconcilePlan;
import ch.ungleich.uncloud.hook.nwfilter.NwfilterBackend;
import ch.ungleich.uncloud.hook.nwfilter.Templates;
import ch.ungleich.uncloud.hook.source.AddressSource;
import ch.ungleich.uncloud.hook.source.EtcdClient;
import ch.ungleich.uncloud.hook.state.AgentStatus;
import ch.ungleich.uncloud.hook.state.StateStore;
import ch.ungleich.uncloud.libvirtxml.LibvirtXml;
import java.io.PrintWriter;
import java.net.URI;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code uncloud-hook doctor}: checks the host, one line per check with the exact fix. */
@Command(
    name = "doctor",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Checks the host and prints one line per check: PASS, WARN or FAIL, what was found, and for",
      "WARN/FAIL the exact fix. Checks: the hook is installed where libvirt looks, executable, and its",
      "launcher's java (17+) and jar exist; libvirtd started after the hook appeared; the configuration;",
      "nft and the kernel accept our ruleset; libvirt answers; per running domain and NIC: valid metadata,",
      "live = persistent metadata, a type this backend can filter, its tap exists; drift (installed rules",
      "= metadata) and leftovers; addresses claimed by two domains; net.bridge.bridge-nf-call-*.",
      "Changes nothing."
    },
    exitCodeListHeading = "%nExit codes:%n",
    exitCodeList = {"0:every check passed", "1:warnings, no failure", "2:at least one failure (or a wrong command line)"})
final class DoctorCommand implements Callable<Integer> {
  static final String HOOKS_DIR_ENV = "UNCLOUD_HOOK_HOOKS_DIR";
  static final String DEFAULT_HOOKS_DIR = "/etc/libvirt/hooks";

  @Mixin CommonOptions common;

  @Option(
      names = "--hooks-dir",
      paramLabel = "DIR",
      description = "libvirt's hooks directory (default: $" + HOOKS_DIR_ENV + ", else " + DEFAULT_HOOKS_DIR + ").")
  String hooksDir;

  @Option(names = "--state-dir", paramLabel = "DIR", description = "Ownership records (default: state_dir of the configuration).")
  String stateDir;

  @Option(
      names = "--libvirtd-pidfile",
      paramLabel = "FILE",
      description = "libvirtd's pid file (default: libvirtd.pid or virtqemud.pid in the run directory of the"
          + " connection's socket, else the only libvirtd/virtqemud process).")
  String pidFile;

  @Spec CommandSpec spec;

  /** The {@code --json} shape. */
  record Result(int exitCode, Summary summary, List<Check> checks) {}

  record Summary(int pass, int warn, int fail) {}

  @Override
  public Integer call() {
    LinuxHost host = new LinuxHost();
    List<Check> checks = new ArrayList<>();

    // the hook where libvirt looks for it
    String dir = hooksDir != null ? hooksDir : env(HOOKS_DIR_ENV, DEFAULT_HOOKS_DIR);
    List<LinuxHost.FileInfo> dropins = new ArrayList<>();
    for (String n : host.list(dir + "/qemu.d")) {
      dropins.add(host.file(dir + "/qemu.d/" + n));
    }
    Checks.HookFiles files = new Checks.HookFiles(dir, host.file(dir + "/qemu"), dropins);
    Checks.HookResult hook = Checks.hook(files);
    checks.addAll(hook.checks());
    Launcher launcher = hook.launcher();
    if (launcher != null) {
      LinuxHost.FileInfo java = launcher.java().startsWith("/") ? host.file(launcher.java()) : host.file("/nonexistent");
      String version = null;
      if (java.executable()) {
        LinuxHost.Result r = host.run(List.of(launcher.java(), "-version"), 30);
        version = r.exit() == 0 ? r.err() + r.out() : "exit " + r.exit() + ": " + r.err();
      }
      checks.add(Checks.java(launcher, java, version));
      checks.add(Checks.jar(launcher, host.file(launcher.jar())));
    }

    // the configuration the hook reads: --config-file, else what the launcher sets, else the default
    String configPath = common.configGiven() || launcher == null || launcher.config() == null
        ? common.configPath() : launcher.config();
    String source = common.configGiven() ? "--config-file"
        : launcher != null && launcher.config() != null ? "set by the launcher"
        : System.getenv(Config.ENV) != null ? "$" + Config.ENV : "default path";
    Config cfg;
    String cfgError = null;
    try {
      cfg = CommonOptions.loadConfig(configPath);
    } catch (UncloudException e) {
      cfgError = e.getMessage();
      cfg = Config.defaults();
    }
    checks.add(Checks.config(configPath, source, host.file(configPath).exists(), cfg, cfgError));
    if (stateDir != null) {
      cfg = new Config(cfg.backend(), cfg.unlisted(), cfg.linkLocalAny(), cfg.dhcpClient(), stateDir, cfg.logFile(),
          cfg.lockTimeoutSeconds(), cfg.nft(), cfg.vmTaps(), cfg.etcd(), cfg.agentResyncSeconds(), cfg.ingressDeny());
    }

    // libvirtd noticed the hook
    if (hook.file() != null) {
      Checks.Daemon d = daemon(host);
      checks.add(
          Checks.libvirtdSawHook(
              files, d, lastLogLine(host, cfg.logFile()), sighup(host, cfg.stateDir(), d.pid()), cfg.stateDir()));
    }

    // libvirt
    Inventory inv = null;
    Map<String, String> filters = new LinkedHashMap<>();
    try (LibvirtSession s = LibvirtSession.open(common.uri())) {
      String v = s.daemonVersion();
      inv = Inventory.read(s, cfg, false);
      checks.add(Checks.libvirt(common.uri(), v, inv.domains.size(), inv.running().size(), null));
      if (cfg.backend().equals("nwfilter")) {
        for (Templates.Template t : Templates.all()) {
          filters.put(t.name(), s.filterXml(t.name()));
        }
      }
    } catch (UncloudException e) {
      checks.add(Checks.libvirt(common.uri(), null, 0, 0, e.getMessage()));
    }

    // the backend
    if (cfg.backend().equals("nft")) {
      LinuxHost.Result v = host.run(List.of(cfg.nft(), "--version"), 10);
      checks.add(Checks.nftBinary(cfg.nft(), v.exit() == 0 ? v.out() : v.exit() < 0 ? null : v.err()));
      NftRunner nft = new ProcessNftRunner(cfg.nft());
      List<DomainPolicy> policies = inv == null ? List.of() : inv.policies();
      boolean sample = policies.stream().noneMatch(p -> p.nics().stream().anyMatch(n -> n.hasChain()));
      NftState canonical = null;
      try {
        canonical = NftJson.parse(nft.canonical(NftBackend.desiredScript(sample ? List.of(samplePolicy(cfg)) : policies, cfg.vmTaps().patterns())));
        checks.add(Checks.nftKernel(null, canonical.chains().size() - 1, sample));
      } catch (UncloudException e) {
        checks.add(Checks.nftKernel(e.getMessage(), 0, sample));
      }
      if (inv != null) {
        checks.addAll(Checks.domains(inv.domains, cfg, host::linkMac, common.uri()));
        if (canonical != null) {
          try {
            Reconcile r = new Reconcile(inv.desired(), nft, new StateStore(cfg.stateDir(), cfg.lockTimeoutSeconds()), host::linkMac, cfg.vmTaps());
            // the kernel check loaded the running domains' desired ruleset already: compare with that
            ReconcilePlan plan = sample ? r.plan() : r.plan(canonical);
            int filtered = 0;
            for (DomainPolicy p : policies) {
              filtered += (int) p.nics().stream().filter(n -> n.hasChain()).count();
            }
            checks.addAll(Checks.drift(plan, filtered, cfg.etcd().etcd() ? "etcd (the key of every running domain)" : "the metadata"));
            checks.addAll(guard(cfg, configPath, nft, host, filtered));
          } catch (UncloudException e) {
            checks.add(Check.fail("drift", null, "cannot compare: " + e.getMessage(), "run doctor as root where the hook runs"));
          }
        }
      }
    } else if (inv != null) {
      checks.addAll(Checks.nwfilterTemplates(Templates.all(), filters));
      checks.addAll(Checks.domains(inv.domains, cfg, host::linkMac, common.uri()));
      checks.addAll(Checks.nwfilterDrift(inv.domains, cfg));
      try {
        NftState table = Reconcile.observe(new ProcessNftRunner(cfg.nft()));
        checks.add(Checks.nftLeftover(table.exists(), table.ports() == null ? 0 : table.ports().elements().size()));
      } catch (UncloudException e) {
        // no nft on a pure nwfilter host: then there is no table either
        checks.add(Checks.nftLeftover(false, 0));
      }
    }
    if (inv != null) {
      checks.addAll(Checks.conflicts(inv.domains));
    }
    if (cfg.etcd().etcd()) {
      checks.addAll(etcdChecks(cfg, inv));
    }
    checks.add(agentCheck(cfg));
    List<String> stateful = new ArrayList<>();
    boolean nwfilter = cfg.backend().equals("nwfilter");
    if (inv != null) {
      for (DomainPolicy p : inv.policies()) {
        for (NicPolicy n : p.nics()) {
          // nwfilter: a NIC whose filterref carries the rules (it need not run: its rules apply at start)
          if ((nwfilter ? NwfilterBackend.expected(n) != null : n.hasChain()) && n.rules().any()) {
            stateful.add(p.name() + " " + n.name());
          }
        }
      }
    }
    String v4 = host.sysctl("net.bridge.bridge-nf-call-iptables");
    checks.addAll(Checks.bridgeNfCall(v4, host.sysctl("net.bridge.bridge-nf-call-ip6tables"), stateful,
        stateful.isEmpty() ? null : kernelPaths(host, cfg.nft(), v4 != null), nwfilter));
    checks.addAll(Checks.tcpLoose(host.sysctl("net.netfilter.nf_conntrack_tcp_loose"), stateful));

    int code = Checks.exitCode(checks);
    int pass = 0;
    int warn = 0;
    int fail = 0;
    for (Check c : checks) {
      switch (c.status()) {
        case PASS -> pass++;
        case WARN -> warn++;
        case FAIL -> fail++;
      }
    }
    PrintWriter out = spec.commandLine().getOut();
    if (common.json()) {
      Json.print(out, new Result(code, new Summary(pass, warn, fail), checks));
    } else {
      checks.forEach(c -> out.println(c.line()));
      out.println(pass + " passed, " + warn + " warning" + (warn == 1 ? "" : "s") + ", " + fail + " failure" + (fail == 1 ? "" : "s"));
      out.flush();
    }
    return code;
  }

  /** source = etcd: each endpoint, and the running domains that have no key. */
  private static List<Check> etcdChecks(Config cfg, Inventory inv) {
    EtcdClient etcd = new EtcdClient(cfg.etcd());
    Map<String, String> endpoints = new LinkedHashMap<>();
    cfg.etcd().endpoints().forEach(e -> endpoints.put(e, etcd.status(e)));
    Map<String, String> missing = new LinkedHashMap<>();
    if (inv != null && endpoints.values().stream().anyMatch(v -> v.startsWith("version"))) {
      for (DomainView d : inv.running()) {
        if (d.live() != null && d.policy() != null) {
          String key = AddressSource.key(d.live(), cfg);
          try {
            if (etcd.get(key) == null) {
              missing.put(d.name(), key);
            }
          } catch (UncloudException e) {
            break; // the endpoint checks say it
          }
        }
      }
    }
    return Checks.etcd(endpoints, missing, cfg.unlisted());
  }

  /**
   * Which kernel paths for conntrack of bridged IP exist: br_netfilter (used) and nf_conntrack_bridge
   * (not used). From {@code /proc/modules} and {@code /lib/modules/<release>}; only when neither knows
   * nf_conntrack_bridge, the kernel is asked with {@code nft -c} (a check: nothing is applied, and with
   * no module file there is nothing it could load).
   */
  static Checks.KernelPaths kernelPaths(LinuxHost host, String nft, boolean sysctls) {
    String lib = "/lib/modules/" + System.getProperty("os.version");
    String loaded = host.readFile("/proc/modules");
    String builtin = host.readFile(lib + "/modules.builtin");
    String br = module(host, lib, loaded, builtin, "br_netfilter", "kernel/net/bridge/br_netfilter.ko");
    if (br == null) {
      br = sysctls ? "built in" : "absent";
    }
    String ct = module(host, lib, loaded, builtin, "nf_conntrack_bridge", "kernel/net/bridge/netfilter/nf_conntrack_bridge.ko");
    if (ct == null) {
      LinuxHost.Result r = host.run(List.of(nft, "-c", "add table bridge uncloud-doctor-probe; add chain bridge"
          + " uncloud-doctor-probe c; add rule bridge uncloud-doctor-probe c ct state established accept"), 10);
      ct = r.exit() == 0 ? "built in" : r.err().contains("Protocol error") ? "absent" : null;
    }
    return new Checks.KernelPaths(br, ct);
  }

  /** {@code loaded}, {@code built in}, {@code module} (a file, not loaded), or null when nothing says. */
  private static String module(LinuxHost host, String lib, String loaded, String builtin, String name, String path) {
    if (loaded != null && loaded.lines().anyMatch(l -> l.startsWith(name + " "))) {
      return "loaded";
    }
    if (builtin != null && builtin.lines().anyMatch(l -> l.strip().equals(path))) {
      return "built in";
    }
    for (String ext : List.of("", ".xz", ".zst", ".gz")) {
      if (host.file(lib + "/" + path + ext).exists()) {
        return "module";
      }
    }
    return null;
  }

  /** The agent check from state_dir/agent.json (an unreadable file counts as none). */
  private Check agentCheck(Config cfg) {
    AgentStatus agent = null;
    try {
      agent = AgentStatus.read(cfg.stateDir()).orElse(null);
    } catch (IllegalStateException e) {
      // unreadable: reported as no agent
    }
    boolean alive = agent != null && ProcessHandle.of(agent.pid()).map(ProcessHandle::isAlive).orElse(false);
    return Checks.agent(agent, alive, common.uri(), System.currentTimeMillis(), cfg.agentResyncSeconds());
  }

  /** A NIC with documentation addresses: what the kernel check loads when no domain runs. */
  /** The vm_taps guard check: what the dispatch chain has, which taps sit on bridges, which have elements. */
  private static List<Check> guard(Config cfg, String configPath, NftRunner nft, LinuxHost host, int filtered) {
    NftState table = Reconcile.observe(nft);
    List<String> installed = null;
    if (table.chain(NftScript.BASE_CHAIN) != null) {
      installed = NftGuard.installed(nft.run("list", "chain", NftScript.FAMILY, NftScript.TABLE, NftScript.BASE_CHAIN));
    }
    Set<String> elements = table.ports() == null ? Set.of() : table.ports().elements().keySet();
    return Checks.guard(cfg.vmTaps(), configPath, installed, host.bridgeTaps(), elements, filtered);
  }

  private static DomainPolicy samplePolicy(Config cfg) {
    String xml = "<domain type='kvm'><name>doctor-sample</name><uuid>00000000-0000-4000-8000-000000000000</uuid>"
        + "<metadata><uc:firewall xmlns:uc='https://ungleich.ch/uncloud/hook/1'><uc:interface mac='52:54:00:00:00:01'>"
        + "<uc:ip address='192.0.2.1'/><uc:ip address='2001:db8::/64'/></uc:interface></uc:firewall></metadata>"
        + "<devices><interface type='bridge'><mac address='52:54:00:00:00:01'/><target dev='doctor0'/></interface>"
        + "</devices></domain>";
    return PolicyBuilder.build(LibvirtXml.readDomain(xml), cfg);
  }

  /**
   * Finds the daemon that runs hooks for this connection: {@code --libvirtd-pidfile}; else the pid
   * file in the run directory of the connection's socket ({@code socket=/x/run/libvirt/libvirt-sock}
   * gives {@code /x/run/libvirtd.pid}; {@code qemu:///system} gives {@code /run/libvirtd.pid} or, with
   * modular daemons, {@code /run/virtqemud.pid}); else the only libvirtd or virtqemud process.
   */
  Checks.Daemon daemon(LinuxHost host) {
    Set<String> names = Set.of("libvirtd", "virtqemud");
    List<String> candidates = new ArrayList<>();
    if (pidFile != null) {
      candidates.add(pidFile);
    } else {
      URI u;
      try {
        u = URI.create(common.uri());
      } catch (IllegalArgumentException e) {
        return new Checks.Daemon(null, "cannot read URI " + common.uri(), null);
      }
      if (u.getHost() != null && !u.getHost().isEmpty() && !u.getHost().equals("localhost")) {
        return new Checks.Daemon(null, "remote connection " + common.uri() + "; run doctor on that host", null);
      }
      String socket = null;
      if (u.getRawQuery() != null) {
        for (String kv : u.getRawQuery().split("&")) {
          if (kv.startsWith("socket=")) {
            socket = java.net.URLDecoder.decode(kv.substring(7), java.nio.charset.StandardCharsets.UTF_8);
          }
        }
      }
      String run = "/run";
      if (socket != null) {
        String d = socket.substring(0, Math.max(socket.lastIndexOf('/'), 0)); // .../run/libvirt
        run = d.substring(0, Math.max(d.lastIndexOf('/'), 0)); // .../run
      }
      candidates.add(run + "/libvirtd.pid");
      candidates.add(run + "/virtqemud.pid");
    }
    for (String f : candidates) {
      String s = host.readFile(f);
      if (s != null && s.strip().matches("[0-9]+")) {
        long pid = Long.parseLong(s.strip());
        String comm = host.processName(pid);
        if (comm != null && names.contains(comm)) {
          return new Checks.Daemon(pid, "pid file " + f, host.processStartMillis(pid));
        }
      }
    }
    if (pidFile != null) {
      return new Checks.Daemon(null, pidFile + " names no running libvirtd or virtqemud", null);
    }
    List<Long> pids = host.pidsNamed(names);
    if (pids.size() == 1) {
      return new Checks.Daemon(pids.get(0), "the only libvirtd/virtqemud process", host.processStartMillis(pids.get(0)));
    }
    return new Checks.Daemon(
        null,
        pids.isEmpty() ? "no libvirtd or virtqemud process"
            : pids.size() + " libvirtd/virtqemud processes " + pids + " and no pid file at " + String.join(" or ", candidates),
        null);
  }

  /** When {@code pid} was last sent SIGHUP according to {@code state_dir/libvirtd-sighup}; null if never. */
  static Long sighup(LinuxHost host, String stateDir, Long pid) {
    String text = pid == null ? null : host.readFile(stateDir + "/" + Checks.SIGHUP_RECORD);
    Long at = null;
    if (text != null) {
      for (String line : text.split("\n")) {
        String[] f = line.strip().split("\\s+");
        if (f.length == 2 && f[0].equals(Long.toString(pid)) && f[1].matches("[0-9]{1,12}")) {
          at = Long.parseLong(f[1]) * 1000;
        }
      }
    }
    return at;
  }

  /** The time of the hook log's last line ({@code <ISO time> <level> <text>}); null when none. */
  static Long lastLogLine(LinuxHost host, String logFile) {
    if (logFile == null || logFile.isEmpty()) {
      return null;
    }
    String tail = host.tail(logFile, 8192);
    if (tail == null) {
      return null;
    }
    String[] lines = tail.strip().split("\n");
    for (int i = lines.length - 1; i >= 0; i--) {
      String first = lines[i].strip().split(" ", 2)[0];
      try {
        return OffsetDateTime.parse(first).toInstant().toEpochMilli();
      } catch (RuntimeException e) {
        // not a log line (a half line at the start of the tail)
      }
    }
    return null;
  }

  private static String env(String name, String dflt) {
    String v = System.getenv(name);
    return v == null || v.isBlank() ? dflt : v;
  }

}
