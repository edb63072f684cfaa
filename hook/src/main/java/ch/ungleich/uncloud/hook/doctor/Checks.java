package ch.ungleich.uncloud.hook.doctor;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.host.DomainView;
import ch.ungleich.uncloud.hook.host.LinuxHost.FileInfo;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.source.AddressSource;
import ch.ungleich.uncloud.hook.model.IpPrefix;
import ch.ungleich.uncloud.hook.model.Mode;
import ch.ungleich.uncloud.hook.model.NicPolicy;
import ch.ungleich.uncloud.hook.model.VmTaps;
import ch.ungleich.uncloud.hook.nft.InboundDrift;
import ch.ungleich.uncloud.hook.nft.NftBackend;
import ch.ungleich.uncloud.hook.nft.ReconcilePlan;
import ch.ungleich.uncloud.hook.nwfilter.FilterXml;
import ch.ungleich.uncloud.hook.nwfilter.NwfilterBackend;
import ch.ungleich.uncloud.hook.nwfilter.Templates;
import ch.ungleich.uncloud.hook.state.AgentStatus;
import ch.ungleich.uncloud.libvirtxml.firewall.Firewall;
import ch.ungleich.uncloud.libvirtxml.firewall.FirewallInterface;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;

/**
 * {@code doctor}'s checks: facts in, {@link Check}s out. Pure; {@code DoctorCommand} gathers the
 * facts (files, processes, libvirt, nft) and prints the result.
 */
public final class Checks {
  /**
   * A file in {@code state_dir} where whoever sends libvirtd SIGHUP to make it notice the hook (the
   * installer) records it: lines {@code <pid> <epoch seconds>}; the last line for libvirtd's PID counts.
   */
  public static final String SIGHUP_RECORD = "libvirtd-sighup";

  /** The hook's namespace, for the exact virsh commands in fixes. */
  private static final String NS = Firewall.NAMESPACE;

  private Checks() {}

  // ------------------------------------------------------------------ the hook file

  /**
   * Where libvirt looks for hooks (libvirt {@code src/util/virhook.c}): {@code HOOKS/qemu}, then every
   * executable in {@code HOOKS/qemu.d/}.
   */
  public record HookFiles(String dir, FileInfo main, List<FileInfo> dropins) {
    /** Every file libvirt would run: executable ones. */
    public List<FileInfo> executables() {
      List<FileInfo> out = new ArrayList<>();
      if (main.exists() && main.executable() && !main.directory()) {
        out.add(main);
      }
      dropins.stream().filter(f -> f.executable() && !f.directory()).forEach(out::add);
      return out;
    }
  }

  /** The hook checks and, when one was found, our launcher (for the java/jar/libvirtd checks). */
  public record HookResult(List<Check> checks, FileInfo file, Launcher launcher) {}

  public static HookResult hook(HookFiles f) {
    List<Check> out = new ArrayList<>();
    List<FileInfo> ours = new ArrayList<>();
    List<Launcher> launchers = new ArrayList<>();
    for (FileInfo fi : concat(f.main(), f.dropins())) {
      Launcher l = fi.regular() ? Launcher.parse(fi.content()) : null;
      if (l != null && l.ours()) {
        ours.add(fi);
        launchers.add(l);
      }
    }
    if (ours.isEmpty()) {
      String dropin = f.dir() + "/qemu.d/uncloud-hook";
      if (f.main().exists()) {
        out.add(
            Check.fail(
                "hook", f.main().path(),
                "another program's hook, and ours is not in " + f.dir() + "/qemu.d/: libvirt never runs uncloud-hook",
                "install ours as " + dropin + " (install/install.sh does; libvirt runs qemu.d/ after the main script),"
                    + " then restart libvirtd"));
      } else {
        out.add(
            Check.fail(
                "hook", f.dir(),
                "no hook: neither " + f.main().path() + " nor a launcher in " + f.dir() + "/qemu.d/ runs uncloud-hook.jar:"
                    + " VMs start unfiltered",
                "install it (install/install.sh), then restart libvirtd"));
      }
      return new HookResult(out, null, null);
    }
    FileInfo file = ours.get(0);
    Launcher l = launchers.get(0);
    if (ours.size() > 1) {
      out.add(
          Check.warn(
              "hook", file.path(), "installed " + ours.size() + " times (also " + ours.get(1).path() + "): libvirt runs each",
              "rm " + ours.get(1).path()));
    }
    if (!file.executable()) {
      out.add(
          Check.fail(
              "hook", file.path(), "our launcher is not executable: libvirt skips it (log: 'Non-executable hook script')",
              "chmod 755 " + file.path() + ", then restart libvirtd (it looks for hooks only when it starts)"));
    } else if (!l.passesArgs()) {
      out.add(
          Check.fail(
              "hook", file.path(), "launcher does not end in 'hook \"$@\"': libvirt's arguments never reach uncloud-hook",
              "make its last line: exec " + l.java() + " -jar " + l.jar() + " hook \"$@\""));
    } else {
      out.add(Check.pass("hook", file.path(), "our launcher, executable: " + l.java() + " -jar " + l.jar()));
    }
    return new HookResult(out, file, l);
  }

  /** The launcher's java: exists, absolute, version 17 or newer ({@code java -version} output). */
  public static Check java(Launcher l, FileInfo java, String versionOutput) {
    String subject = l.java();
    if (!l.java().startsWith("/")) {
      return Check.fail(
          "hook-java", subject,
          "not an absolute path: libvirtd runs hooks with a minimal environment and may not find it",
          "write the absolute path, e.g. /usr/lib/jvm/java-17-openjdk-amd64/bin/java, into the launcher");
    }
    if (!java.exists() || !java.executable()) {
      return Check.fail(
          "hook-java", subject, java.exists() ? "not executable" : "does not exist",
          "apt-get install openjdk-17-jre-headless, or point the launcher at an installed java 17+");
    }
    int major = Launcher.javaMajor(versionOutput);
    if (major < 0) {
      return Check.fail(
          "hook-java", subject, "'" + subject + " -version' failed: " + firstLine(versionOutput),
          "run '" + subject + " -version' and repair or replace that java");
    }
    if (major < 17) {
      return Check.fail(
          "hook-java", subject, "is java " + major + "; uncloud-hook needs 17 or newer",
          "apt-get install openjdk-17-jre-headless and use /usr/lib/jvm/java-17-openjdk-amd64/bin/java in the launcher");
    }
    return Check.pass("hook-java", subject, "java " + major + " (" + firstLine(versionOutput) + ")");
  }

  public static Check jar(Launcher l, FileInfo jar) {
    if (!jar.exists() || !jar.regular()) {
      return Check.fail(
          "hook-jar", l.jar(), "does not exist: every hook call fails and libvirt refuses to start VMs",
          "reinstall (install/install.sh) or correct the jar path in the launcher");
    }
    return Check.pass("hook-jar", l.jar(), "present");
  }

  // ------------------------------------------------------------------ libvirtd saw the hook

  /**
   * How libvirtd was found.
   *
   * @param pid null when not found
   * @param how e.g. {@code pid file /run/libvirtd.pid}; or why it was not found
   */
  public record Daemon(Long pid, String how, Long startMillis) {}

  /**
   * libvirtd registers hooks only when it starts (or on SIGHUP): {@code virHookInitialize} looks for
   * an executable {@code qemu} or {@code qemu.d/*} once, and if there was none, never calls any hook
   * until then. So the earliest change time (ctime: content or chmod) among the executable hook files
   * must be before libvirtd's start, or the hook must have logged a call since that start.
   *
   * @param lastCallMillis time of the last line in the hook's log file, null when none
   * @param sighupMillis when this libvirtd was sent SIGHUP, as recorded in {@link #SIGHUP_RECORD}
   *     (doctor cannot see a SIGHUP otherwise), null when none is recorded
   */
  public static Check libvirtdSawHook(HookFiles f, Daemon d, Long lastCallMillis, Long sighupMillis, String stateDir) {
    if (d.pid() == null) {
      return Check.warn(
          "libvirtd-hook", null, "cannot tell when libvirtd started: " + d.how(),
          "pass --libvirtd-pidfile FILE (e.g. /run/libvirtd.pid), or run doctor on the libvirt host");
    }
    String who = "libvirtd (pid " + d.pid() + ", " + d.how() + ")";
    if (d.startMillis() == null) {
      return Check.warn("libvirtd-hook", null, who + ": start time unknown", "run doctor as root on the libvirt host");
    }
    List<FileInfo> ex = f.executables();
    if (ex.isEmpty()) {
      return Check.fail(
          "libvirtd-hook", null, who + " has no executable hook to run", "install the hook, then restart libvirtd");
    }
    long since = ex.stream().mapToLong(FileInfo::ctimeMillis).min().getAsLong();
    String start = time(d.startMillis());
    if (lastCallMillis != null && lastCallMillis >= d.startMillis()) {
      return Check.pass(
          "libvirtd-hook", null, who + " started " + start + " and has called the hook since (last log line " + time(lastCallMillis) + ")");
    }
    if (since <= d.startMillis()) {
      return Check.pass("libvirtd-hook", null, who + " started " + start + ", after the hook was in place (" + time(since) + ")");
    }
    if (sighupMillis != null && sighupMillis >= since) {
      return Check.pass(
          "libvirtd-hook", null,
          who + " got SIGHUP at " + time(sighupMillis) + ", after the hook was in place (" + time(since) + ")");
    }
    return Check.warn(
        "libvirtd-hook", null,
        who + " started " + start + ", BEFORE the hook file changed (" + time(since) + "); libvirtd looks for hooks"
            + " only at start and on SIGHUP, so it may never call it",
        "restart libvirtd (systemctl restart libvirtd; running VMs keep running and get their rules re-applied at"
            + " 'reconnect'), or kill -HUP " + d.pid() + " && echo \"" + d.pid() + " $(date +%s)\" >> " + stateDir + "/" + SIGHUP_RECORD
            + " (doctor cannot see a SIGHUP itself)");
  }

  // ------------------------------------------------------------------ configuration, nft, libvirt

  /**
   * @param source where the path came from: {@code --config-file}, {@code the launcher}, ...
   * @param error the parse error, null when it parsed
   */
  public static Check config(String path, String source, boolean exists, Config c, String error) {
    if (error != null) {
      return Check.fail("config", path, "(" + source + ") " + error, "correct that line (settings and values: README, 'Host settings')");
    }
    String values = "backend=" + c.backend() + " unlisted=" + c.unlisted() + " link_local=" + (c.linkLocalAny() ? "any" : "eui64")
        + " dhcp_client=" + (c.dhcpClient() ? "yes" : "no") + " state_dir=" + c.stateDir() + " lock_timeout=" + c.lockTimeoutSeconds();
    return Check.pass("config", path, "(" + source + ") " + (exists ? "valid: " : "absent, defaults apply: ") + values);
  }

  /** @param versionOutput {@code nft --version}'s output, null when it could not run */
  public static Check nftBinary(String nft, String versionOutput) {
    if (versionOutput == null || !versionOutput.startsWith("nftables")) {
      return Check.fail(
          "nft", nft, "cannot run '" + nft + " --version'" + (versionOutput == null ? "" : ": " + firstLine(versionOutput)),
          "apt-get install nftables, or set 'nft = /path/to/nft' in the configuration");
    }
    return Check.pass("nft", nft, firstLine(versionOutput));
  }

  /** @param error nft's refusal of the check-only load, null when accepted */
  public static Check nftKernel(String error, int chains, boolean sample) {
    if (error != null) {
      return Check.fail(
          "nft-kernel", null, "the kernel refuses our ruleset (nft -c): " + error,
          "use a kernel with nf_tables and its bridge family (CONFIG_NF_TABLES_BRIDGE; modprobe nf_tables) and nft"
              + " 0.9.7 or newer; reproduce with: uncloud-hook plan DOMAIN | nft -c -f -");
    }
    return Check.pass(
        "nft-kernel", null,
        "the kernel accepts our ruleset (check-only load, " + (sample ? "a sample NIC" : chains + " port chain" + (chains == 1 ? "" : "s")) + ")");
  }

  public static Check libvirt(String uri, String version, int domains, int running, String error) {
    if (error != null) {
      return Check.fail(
          "libvirt", uri, error, "start libvirtd (systemctl start libvirtd), or pass --connect URI for the right daemon");
    }
    return Check.pass("libvirt", uri, "libvirt " + version + ", " + domains + " domain" + (domains == 1 ? "" : "s") + ", " + running + " running");
  }

  // ------------------------------------------------------------------ domains and NICs

  /**
   * Per running domain: policy valid, live and persistent metadata agree; per NIC: metadata present,
   * a filterable type, its tap present. A NIC with no finding gets one PASS line.
   *
   * @param linkMac the MAC of an interface in this namespace, null when it does not exist
   */
  public static List<Check> domains(List<DomainView> views, Config c, Function<String, String> linkMac, String uri) {
    List<Check> out = new ArrayList<>();
    String virsh = "virsh" + (uri.equals("qemu:///system") ? "" : " -c '" + uri + "'");
    for (DomainView d : views) {
      if (!d.active()) {
        continue;
      }
      if (d.policy() == null) {
        out.add(
            Check.fail(
                "domain-metadata", d.name(), "invalid metadata: " + d.error() + "; the hook refuses to start it again (its rules"
                    + " now stay as they were)",
                c.etcd().etcd() ? "see 'uncloud-hook etcd get " + d.name() + "', correct the key (uncloud-hook etcd put "
                    + d.name() + " --file VALUE)"
                    : "see 'uncloud-hook metadata show " + d.name() + "', correct it with 'uncloud-hook metadata set " + d.name()
                    + " --mac MAC --ip ADDRESS'"));
        continue;
      }
      if (!d.metadataAgree()) {
        String live = DomainView.normal(d.liveMetadata());
        String conf = DomainView.normal(d.configMetadata());
        String fix = d.liveMetadata() == null
            ? virsh + " metadata " + d.name() + " --uri " + NS + " --config --remove"
            : virsh + " metadata " + d.name() + " --uri " + NS + " --key uc --config --set \"$(" + virsh + " metadata "
                + d.name() + " --uri " + NS + " --live)\"";
        out.add(
            Check.warn(
                "metadata-agree", d.name(),
                "live metadata [" + (live.isEmpty() ? "none" : live) + "] differs from persistent [" + (conf.isEmpty() ? "none" : conf)
                    + "]: a restart (or a migration with --persistent) changes the rules",
                "if live is right: " + fix + " (if persistent is right, use 'uncloud-hook metadata set " + d.name()
                    + " --live ...' and reconcile)"));
      } else if (d.configError() != null) {
        out.add(
            Check.warn(
                "metadata-agree", d.name(), d.configError() + ": the next start will fail",
                "uncloud-hook metadata set " + d.name() + " --config --mac MAC --ip ADDRESS"));
      }
      for (NicPolicy n : d.policy().nics()) {
        String subject = d.name() + " " + n.name() + " " + n.mac();
        List<Check> nic = new ArrayList<>();
        if (!n.filterable() && n.mode() != Mode.OPEN) {
          nic.add(
              Check.warn(
                  "nic-type", subject,
                  "type '" + n.type() + "'" + (n.type().equals("direct") ? " (macvtap)" : "") + " is not a Linux bridge port:"
                      + " the nft backend cannot filter it; it is NOT protected",
                  "attach it to a Linux bridge (<interface type='bridge'>), or if it needs no filtering mark it trusted:"
                      + " uncloud-hook metadata set " + d.name() + " --mac " + n.mac() + " --trusted"));
        }
        if (n.reason().startsWith("unlisted=") && n.filterable()) {
          String what = switch (c.unlisted()) {
            case "allow" -> "it is NOT filtered";
            case "mac-only" -> "only its own MAC is enforced, any IP passes";
            default -> "only its own MAC and EUI-64 link-local IPv6 pass, all IPv4 is dropped";
          };
          nic.add(
              Check.warn(
                  "nic-metadata", subject, (c.etcd().etcd() ? "not in its etcd key" : "no metadata") + ": unlisted="
                      + c.unlisted() + ", so " + what,
                  c.etcd().etcd() ? "uncloud-hook etcd put " + d.name() + " --file VALUE (or have the VM manager write it)"
                      : "uncloud-hook metadata set " + d.name() + " --mac " + n.mac() + " --ip ADDRESS [--ip ...] --apply"));
        }
        if (n.filterable() && (n.tap() == null || linkMac.apply(n.tap()) == null)) {
          nic.add(
              Check.fail(
                  "nic-tap", subject,
                  n.tap() == null ? "running, but its live XML names no tap (<target dev>)"
                      : "tap " + n.tap() + " does not exist in this network namespace",
                  "run doctor in the network namespace where libvirtd creates taps (the hook runs there)"));
        }
        if (nic.isEmpty()) {
          out.add(Check.pass("nic", subject, describe(n)));
        } else {
          out.addAll(nic);
        }
      }
    }
    return out;
  }

  private static String describe(NicPolicy n) {
    if (n.mode() == Mode.OPEN) {
      return (n.tap() == null ? "" : n.tap() + ", ") + "not filtered (" + n.reason() + ")";
    }
    List<String> a = new ArrayList<>(n.ipv4().elements());
    a.addAll(n.ipv6().elements());
    return n.tap() + ", " + n.mode().name().toLowerCase(java.util.Locale.ROOT).replace('_', '-') + " (" + n.reason() + ")"
        + (n.mode() == Mode.FILTER ? ": " + String.join(", ", a) : "");
  }

  // ------------------------------------------------------------------ drift and leftovers

  /** Drift and leftovers from what reconcile would do now. */
  public static List<Check> drift(ReconcilePlan plan, int filteredNics) {
    return drift(plan, filteredNics, "the metadata");
  }

  /**
   * {@link #drift(ReconcilePlan, int)}; {@code source} names where the demanded addresses come from
   * ("the metadata", or with {@code source = etcd} "etcd": then a PASS is the agreement between etcd's
   * keys and what is installed, every running domain's key read through the same checks).
   */
  public static List<Check> drift(ReconcilePlan plan, int filteredNics, String source) {
    List<Check> out = new ArrayList<>();
    boolean stale = false;
    boolean drift = false;
    for (ReconcilePlan.Change c : plan.changes()) {
      String subject = c.tap() != null ? c.tap() + (c.domain() == null ? "" : " (" + c.domain() + ")")
          : c.action().equals(InboundDrift.ACTION) ? "tables uncloud-inbound" : "table bridge uncloud";
      if (c.action().equals("prelude") && filteredNics == 0) {
        // no NIC needs the table yet (fresh install, no VM): the hook creates it at the first start
        continue;
      }
      if (c.action().equals("prelude") && c.detail().startsWith(NftBackend.GUARD_MISSING)) {
        continue; // the guard check says it, with what it means
      }
      switch (c.action()) {
        case "remove" -> {
          stale = true;
          out.add(Check.warn("stale", subject, "leftover rules: " + c.detail(), "uncloud-hook reconcile"));
        }
        case "record" -> out.add(Check.warn("records", subject, c.detail(), "uncloud-hook reconcile"));
        default -> {
          drift = true;
          out.add(Check.fail("drift", subject, c.detail(), "uncloud-hook reconcile"));
        }
      }
    }
    if (!drift) {
      out.add(0, Check.pass("drift", null, "installed rules equal what " + source + " demands for all " + filteredNics + " filtered NICs"));
    }
    if (!stale) {
      out.add(Check.pass("stale", null, "no leftover rules for taps or domains that are gone"));
    }
    return out;
  }

  /**
   * The vm_taps guard (nft backend): configured, in the dispatch chain, and covering every tap on a
   * bridge. A tap on a bridge whose name matches no pattern and that has no element is a VM NIC our
   * table does not know: it forwards unfiltered.
   *
   * @param installed the guard patterns of the dispatch chain, null when there is no dispatch chain
   * @param bridgeTaps tap devices (tun/tap) enslaved to a bridge, name to bridge
   * @param elements the map's elements
   * @param filteredNics NICs of running domains that have rules; 0: no table needed yet
   */
  public static List<Check> guard(
      VmTaps taps, String configPath, List<String> installed, java.util.Map<String, String> bridgeTaps,
      Set<String> elements, int filteredNics) {
    List<Check> out = new ArrayList<>();
    if (taps.isOff()) {
      out.add(Check.warn("guard", null, "vm_taps = none: a VM tap without rules (a hot-plugged NIC) is forwarded unfiltered",
          "set 'vm_taps = " + VmTaps.DEFAULT + "' in " + configPath + ", then run: uncloud-hook reconcile"));
    } else if (installed == null && filteredNics == 0) {
      out.add(Check.pass("guard", null, "vm_taps = " + taps.text() + "; no table yet: the first VM start adds the guard"));
    } else {
      List<String> missing = new ArrayList<>(taps.patterns());
      if (installed != null) {
        missing.removeAll(installed);
      }
      if (!missing.isEmpty()) {
        out.add(Check.warn("guard", "table bridge uncloud", "vm_taps guard for " + String.join(", ", missing)
            + " is not installed: a VM tap without rules (a hot-plugged NIC) is forwarded unfiltered (a hook call"
            + " leaves it out while a running VM's tap has no rules)", "uncloud-hook reconcile"));
      }
    }
    for (java.util.Map.Entry<String, String> t : new java.util.TreeMap<>(bridgeTaps).entrySet()) {
      String tap = t.getKey();
      if (taps.matches(tap) || elements.contains(tap)) {
        continue;
      }
      String prefix = tap.replaceFirst("[0-9]+$", "") + "*";
      String suggest;
      try {
        VmTaps.parse(prefix);
        suggest = prefix;
      } catch (IllegalArgumentException e) {
        suggest = tap;
      }
      out.add(Check.warn("guard", tap + " (bridge " + t.getValue() + ")",
          "tap on a bridge matches no vm_taps pattern and has no rules: a VM NIC there is forwarded unfiltered",
          "add it to vm_taps in " + configPath + " (vm_taps = " + (taps.isOff() ? "" : taps.text() + ", ") + suggest
              + "), then run: uncloud-hook reconcile"));
    }
    if (out.isEmpty()) {
      out.add(Check.pass("guard", null, "vm_taps guard " + taps.text() + " installed: a VM tap without rules is dropped;"
          + " every tap on a bridge matches it or has rules"));
    }
    return out;
  }

  // ------------------------------------------------------------------ nwfilter backend

  /**
   * Our filters are defined in libvirt and identical to the ones we ship (what {@code nwfilter
   * install} would leave unchanged).
   *
   * @param defined per template name, libvirt's XML of that filter, or null when it is not defined
   */
  public static List<Check> nwfilterTemplates(List<Templates.Template> ours, java.util.Map<String, String> defined) {
    List<Check> out = new ArrayList<>();
    for (Templates.Template t : ours) {
      String have = defined.get(t.name());
      if (have == null) {
        out.add(Check.fail("nwfilter-templates", t.name(), "not defined in libvirt: a NIC referencing it cannot start",
            "uncloud-hook nwfilter install"));
      } else if (!FilterXml.same(t.xml(), have)) {
        out.add(Check.fail("nwfilter-templates", t.name(), "defined, but differs from the one this uncloud-hook ships",
            "uncloud-hook nwfilter install (redefines it; libvirt re-applies it to every NIC that uses it)"));
      }
    }
    if (out.isEmpty()) {
      out.add(Check.pass("nwfilter-templates", null, "all " + ours.size() + " uncloud-* filters are defined and identical to ours"));
    }
    return out;
  }

  /**
   * Every NIC's filterref agrees with the metadata: live ones (what libvirt enforces now; FAIL) and
   * persistent ones (the hook's {@code prepare} refuses the next start; WARN).
   */
  public static List<Check> nwfilterDrift(List<DomainView> views, Config c) {
    List<Check> out = new ArrayList<>();
    int nics = 0;
    AddressSource src = AddressSource.of(c);
    for (DomainView d : views) {
      if (d.active() && d.policy() != null && d.live() != null) {
        try {
          List<NwfilterBackend.NicChange> plan = NwfilterBackend.plan(d.policy(), d.live(), true);
          nics += plan.size();
          if (!NwfilterBackend.inSync(plan)) {
            out.add(Check.fail("drift", d.name(), "live filterrefs disagree with the metadata: " + NwfilterBackend.differences(plan),
                "uncloud-hook sync " + d.name()));
          }
        } catch (UncloudException e) {
          out.add(Check.fail("drift", d.name(), e.getMessage(), "remove that filterref, or mark the NIC trusted"));
        }
      }
      if (d.config() != null && d.configError() == null) {
        try {
          DomainPolicy p = src.policy(d.config());
          List<NwfilterBackend.NicChange> plan = NwfilterBackend.plan(p, d.config(), true);
          if (!NwfilterBackend.inSync(plan)) {
            out.add(Check.warn("drift", d.name() + " (persistent)",
                "filterrefs disagree with the metadata: " + NwfilterBackend.differences(plan) + "; the hook refuses its next start",
                "uncloud-hook sync " + d.name()));
          }
        } catch (UncloudException e) {
          out.add(Check.warn("drift", d.name() + " (persistent)", e.getMessage(), "uncloud-hook metadata show " + d.name()));
        }
      }
    }
    if (out.isEmpty()) {
      out.add(Check.pass("drift", null, "every NIC's filterref agrees with its metadata (" + nics + " running NICs)"));
    }
    return out;
  }

  /** With {@code backend = nwfilter} our nft table must be gone: it would filter a second time, by stale data. */
  public static Check nftLeftover(boolean tableExists, int elements) {
    if (tableExists) {
      return Check.warn("stale", "table bridge uncloud",
          "backend = nwfilter, but the nft backend's table is still there (" + elements + " ports)",
          "nft delete table bridge uncloud");
    }
    return Check.pass("stale", null, "no nft table of the nft backend left");
  }

  // ------------------------------------------------------------------ conflicts

  /**
   * The same address, or overlapping prefixes, claimed by two domains of this host (running ones by
   * their live metadata, others by their persistent one; trusted NICs do not claim). FAIL when both
   * run, WARN otherwise (they collide when both run).
   */
  public static List<Check> conflicts(List<DomainView> views) {
    record Claim(String domain, boolean running, String mac, IpPrefix prefix) {}
    List<Claim> claims = new ArrayList<>();
    for (DomainView d : views) {
      Firewall f = d.metadata();
      if (f == null) {
        continue;
      }
      for (FirewallInterface i : f.interfaces) {
        if (trusted(i)) {
          continue;
        }
        for (FirewallInterface.Ip ip : i.ips) {
          try {
            claims.add(new Claim(d.name(), d.active(), i.mac, IpPrefix.parse(ip.address)));
          } catch (RuntimeException e) {
            // invalid: reported by the domain's own check
          }
        }
      }
    }
    List<Check> out = new ArrayList<>();
    for (int a = 0; a < claims.size(); a++) {
      for (int b = a + 1; b < claims.size(); b++) {
        Claim x = claims.get(a);
        Claim y = claims.get(b);
        if (x.domain().equals(y.domain()) || !x.prefix().overlaps(y.prefix())) {
          continue;
        }
        String found = x.prefix() + (x.prefix().equals(y.prefix()) ? "" : " and " + y.prefix() + " overlap:") + " claimed by "
            + x.domain() + " (" + x.mac() + ") and " + y.domain() + " (" + y.mac() + ")"
            + (x.running() && y.running() ? ": both running, either can take the other's traffic"
                : ": they collide when both run");
        String fix = "give each address to one domain: uncloud-hook metadata set " + y.domain() + " --mac " + y.mac()
            + " --ip ITS-OWN-ADDRESS --apply";
        out.add(x.running() && y.running() ? Check.fail("conflict", null, found, fix) : Check.warn("conflict", null, found, fix));
      }
    }
    if (out.isEmpty()) {
      Set<String> doms = new java.util.TreeSet<>();
      claims.forEach(c -> doms.add(c.domain()));
      out.add(Check.pass("conflict", null, "no address claimed by two domains (" + claims.size() + " addresses, " + doms.size() + " domains)"));
    }
    return out;
  }

  /**
   * What {@code metadata set} would make collide: each address of {@code fw} (untrusted NICs) that
   * overlaps an address another domain claims. One line each; empty when none.
   */
  public static List<String> conflictsWith(String domain, Firewall fw, List<DomainView> views) {
    List<String> out = new ArrayList<>();
    for (FirewallInterface i : fw.interfaces) {
      if (trusted(i)) {
        continue;
      }
      for (FirewallInterface.Ip ip : i.ips) {
        IpPrefix p;
        try {
          p = IpPrefix.parse(ip.address);
        } catch (RuntimeException e) {
          continue;
        }
        for (DomainView d : views) {
          Firewall other = d.metadata();
          if (d.name().equals(domain) || other == null) {
            continue;
          }
          for (FirewallInterface j : other.interfaces) {
            if (trusted(j)) {
              continue;
            }
            for (FirewallInterface.Ip jp : j.ips) {
              try {
                IpPrefix q = IpPrefix.parse(jp.address);
                if (p.overlaps(q)) {
                  out.add(p + " overlaps " + q + " of " + d.name() + " (" + j.mac + (d.active() ? ", running" : "") + ")");
                }
              } catch (RuntimeException e) {
                // invalid: that domain's own problem
              }
            }
          }
        }
      }
    }
    return out;
  }

  private static boolean trusted(FirewallInterface i) {
    return i.trusted != null && (i.trusted.strip().equals("true") || i.trusted.strip().equals("1"));
  }

  // ------------------------------------------------------------------ sysctls

  /** {@link #bridgeNfCall(String, String, List)} for a host without uc:ingress / uc:egress rules. */
  public static List<Check> bridgeNfCall(String v4, String v6) {
    return bridgeNfCall(v4, v6, List.of());
  }

  /** {@link #bridgeNfCall(String, String, List, KernelPaths)} without knowing the kernel's modules. */
  public static List<Check> bridgeNfCall(String v4, String v6, List<String> stateful) {
    return bridgeNfCall(v4, v6, stateful, null);
  }

  /**
   * What the kernel offers for conntrack of bridged IP, each {@code built in}, {@code loaded} (a
   * module), {@code module} (a module file, not loaded), {@code absent}, or null (unknown). doctor reads
   * {@code /proc/modules}, {@code /lib/modules/<release>} and, only when neither has a module file, asks
   * the kernel ({@code nft -c} of a {@code ct} rule in a bridge table: never loads a module).
   *
   * @param brNetfilter br_netfilter: bridged IP through the inet hooks (the path used)
   * @param conntrackBridge nf_conntrack_bridge: conntrack in the bridge family itself (not used)
   */
  public record KernelPaths(String brNetfilter, String conntrackBridge) {
    /** One phrase for doctor's line. */
    String describe() {
      String cb = conntrackBridge == null ? "nf_conntrack_bridge: unknown"
          : conntrackBridge.equals("absent") ? "nf_conntrack_bridge is not in this kernel (ct in a bridge table fails), so this is"
              + " the only path here"
          : "nf_conntrack_bridge is " + (conntrackBridge.equals("module") ? "available as a module (not loaded)" : conntrackBridge)
              + ": detected, not used (conntrack in the bridge table would save br_netfilter's pass; not implemented,"
              + " see docs/design.md#traffic-to-vms)";
      return "br_netfilter" + (brNetfilter == null ? "" : " (" + brNetfilter + ")") + " passes bridged IP through table inet "
          + "uncloud-inbound, where conntrack works; " + cb;
    }
  }

  private static String or(String state) {
    return state == null ? "unknown" : state;
  }

  /**
   * {@code net.bridge.bridge-nf-call-iptables} and {@code -ip6tables}; null when br_netfilter is not
   * loaded. {@code stateful} names the NICs with uc:ingress / uc:egress (or every NIC with metadata
   * under {@code ingress = deny}): their rules are decided in {@code table inet uncloud-inbound}, which
   * bridged IP reaches only through br_netfilter with these sysctls at 1 (the one path implemented:
   * conntrack in the inet family; {@code nf_conntrack_bridge}, where a kernel has it, is not used; the
   * first line says which the kernel has, {@code kernel} null: not said). Without it such NICs are cut
   * off, never opened: FAIL, with the fix.
   */
  public static List<Check> bridgeNfCall(String v4, String v6, List<String> stateful, KernelPaths kernel) {
    return bridgeNfCall(v4, v6, stateful, kernel, false);
  }

  /**
   * As {@link #bridgeNfCall(String, String, List, KernelPaths)}; with {@code nwfilter} ({@code backend =
   * nwfilter}) the rules are libvirt's ip(6)tables rules (FORWARD and INPUT, matched by physdev),
   * which bridged IP reaches only through br_netfilter too, but without it they are simply not
   * applied: such NICs are open (fail open), FAIL with the fix.
   */
  public static List<Check> bridgeNfCall(String v4, String v6, List<String> stateful, KernelPaths kernel,
      boolean nwfilter) {
    List<Check> out = new ArrayList<>();
    if (!stateful.isEmpty() && nwfilter) {
      String who = stateful.size() <= 3 ? String.join(", ", stateful) : stateful.get(0) + " and " + (stateful.size() - 1) + " more NICs";
      String[][] need = {{"net.bridge.bridge-nf-call-iptables", v4, "IPv4", "iptables"},
          {"net.bridge.bridge-nf-call-ip6tables", v6, "IPv6", "ip6tables"}};
      for (String[] s : need) {
        if ("1".equals(s[1])) {
          out.add(Check.pass("sysctl", s[0], "= 1: needed by uc:ingress/uc:egress of " + who + " (backend = nwfilter:"
              + " libvirt's " + s[3] + " rules, FORWARD and INPUT by physdev, which bridged " + s[2] + " reaches through"
              + " br_netfilter)"));
        } else {
          boolean none = "absent".equals(kernel == null ? null : kernel.brNetfilter());
          out.add(Check.fail("sysctl", s[0], (s[1] == null ? "absent (br_netfilter not loaded)" : "= " + s[1])
                  + ": backend = nwfilter enforces the uc:ingress/uc:egress rules of " + who + " with libvirt's " + s[3]
                  + " rules, which bridged " + s[2] + " reaches only through br_netfilter; until then their " + s[2]
                  + " is NOT filtered by these rules (nwfilter fails open)",
              none
                  ? "this kernel has no br_netfilter (CONFIG_BRIDGE_NETFILTER): uc:ingress/uc:egress cannot be enforced here;"
                      + " boot a kernel that has it, or remove uc:ingress/uc:egress (and ingress = deny)"
                  : (s[1] == null ? "modprobe br_netfilter; " : "") + "sysctl -w " + s[0] + "=1 and persist it in /etc/sysctl.d/"
                      + " (per network namespace: the one libvirtd's bridges are in)"));
        }
      }
      return out;
    }
    if (!stateful.isEmpty()) {
      String who = stateful.size() <= 3 ? String.join(", ", stateful) : stateful.get(0) + " and " + (stateful.size() - 1) + " more NICs";
      String[][] need = {{"net.bridge.bridge-nf-call-iptables", v4, "IPv4"}, {"net.bridge.bridge-nf-call-ip6tables", v6, "IPv6"}};
      boolean first = true;
      for (String[] s : need) {
        if ("1".equals(s[1])) {
          out.add(Check.pass("sysctl", s[0], "= 1: needed by uc:ingress/uc:egress of " + who
              + (kernel == null || !first
                  ? " (path: br_netfilter passes bridged " + s[2] + " through table inet uncloud-inbound, where conntrack works;"
                      + " nf_conntrack_bridge is not used)"
                  : "; kernel path: " + kernel.describe())));
        } else {
          boolean none = "absent".equals(kernel == null ? null : kernel.brNetfilter());
          out.add(Check.fail("sysctl", s[0], (s[1] == null ? "absent (br_netfilter not loaded)" : "= " + s[1])
                  + ": the uc:ingress/uc:egress rules of " + who + " are decided in table inet uncloud-inbound, which bridged "
                  + s[2] + " reaches only through br_netfilter; until then their " + s[2] + " is dropped (fail closed)"
                  + (kernel == null || !first ? "" : "; kernel: br_netfilter " + or(kernel.brNetfilter()) + ", nf_conntrack_bridge "
                      + or(kernel.conntrackBridge())),
              none
                  ? "this kernel has no br_netfilter (CONFIG_BRIDGE_NETFILTER): uc:ingress/uc:egress cannot be enforced here;"
                      + " boot a kernel that has it, or remove uc:ingress/uc:egress (and ingress = deny)"
                  : (s[1] == null ? "modprobe br_netfilter; " : "") + "sysctl -w " + s[0] + "=1 and persist it in /etc/sysctl.d/"
                      + " (per network namespace: the one libvirtd's bridges are in)"));
        }
        first = false;
      }
      return out;
    }
    String[][] all = {{"net.bridge.bridge-nf-call-iptables", v4, "iptables"}, {"net.bridge.bridge-nf-call-ip6tables", v6, "ip6tables"}};
    for (String[] s : all) {
      if ("1".equals(s[1])) {
        out.add(
            Check.warn(
                "sysctl", s[0],
                "= 1: bridged VM traffic also traverses the host's " + s[2] + " (FORWARD chain, conntrack); a DROP policy"
                    + " or rule there silently drops VM traffic, a common cause of 'the VM has no network'",
                "sysctl -w " + s[0] + "=0 and persist it in /etc/sysctl.d/ (keep 1 only if you filter bridged traffic"
                    + " with " + s[2] + " on purpose)"));
      } else {
        out.add(Check.pass("sysctl", s[0], s[1] == null ? "absent (br_netfilter not loaded): bridged traffic skips " + s[2] : "= " + s[1]));
      }
    }
    return out;
  }

  /**
   * {@code net.netfilter.nf_conntrack_tcp_loose} (per network namespace; null when conntrack is not
   * loaded there) where NICs have uc:ingress / uc:egress ({@code stateful}): at 0, conntrack on a host a
   * VM migrates to does not pick up the VM's TCP connections in mid-stream, so their replies are
   * dropped as unsolicited until the connection is re-established (MigrationSuite measures it). A
   * WARN then, no line otherwise.
   */
  public static List<Check> tcpLoose(String value, List<String> stateful) {
    if (stateful.isEmpty() || !"0".equals(value)) {
      return List.of();
    }
    String who = stateful.size() <= 3 ? String.join(", ", stateful) : stateful.get(0) + " and " + (stateful.size() - 1) + " more NICs";
    return List.of(Check.warn("sysctl", "net.netfilter.nf_conntrack_tcp_loose",
        "= 0: TCP connections that " + who + " opened on another host stall after a live migration to this one (their"
            + " replies are not 'established' here until the guest opens them again)",
        "sysctl -w net.netfilter.nf_conntrack_tcp_loose=1 (the kernel's default) and persist it in /etc/sysctl.d/"));
  }

  // ------------------------------------------------------------------ summary

  /** 0 all pass, 1 warnings, 2 failures. */
  /** The fix for an agent that does not run. */
  static final String AGENT_FIX = "systemctl enable --now uncloud-hook-agent (without systemd: run 'uncloud-hook agent'"
      + " in the foreground)";

  /**
   * The {@code agent} check: {@code uncloud-hook agent} runs (the pid in {@code state_dir/agent.json}
   * is alive), is connected to this libvirt, and resynced recently. Without it hot-plugged NICs stay
   * dropped (nft) or unfiltered (nwfilter) and live metadata changes wait for the next start or sync:
   * WARN, not FAIL (the hook protects alone).
   *
   * @param s agent.json, null when there is none
   * @param alive whether its pid is a live process
   */
  public static Check agent(AgentStatus s, boolean alive, String uri, long nowMs, int resyncSeconds) {
    String consequence = ": hot-plugged NICs stay dropped, live metadata changes and lost rulesets wait for the next"
        + " start or reconcile";
    if (s == null) {
      return Check.warn("agent", null, "no agent has run with this state_dir" + consequence, AGENT_FIX);
    }
    if (!alive) {
      return Check.warn("agent", null, "not running (pid " + s.pid() + " is gone; last resync "
          + (s.lastResyncMs() == 0 ? "never" : time(s.lastResyncMs())) + ")" + consequence, AGENT_FIX);
    }
    if (!s.connected()) {
      return Check.warn("agent", null, "pid " + s.pid() + " runs but is not connected to " + s.uri()
          + (s.lastError() == null ? "" : " (" + firstLine(s.lastError()) + ")"), "start libvirtd; the agent reconnects by itself");
    }
    if (uri != null && !uri.equals(s.uri())) {
      return Check.warn("agent", null, "pid " + s.pid() + " is connected to " + s.uri() + ", not to " + uri,
          "run the agent with --connect " + uri);
    }
    long staleMs = 3L * resyncSeconds * 1000 + 10_000;
    if (nowMs - s.updatedMs() > staleMs) {
      return Check.warn("agent", null, "pid " + s.pid() + " has not written agent.json since " + time(s.updatedMs())
          + " (it does every " + resyncSeconds + " s): hung?", "systemctl restart uncloud-hook-agent");
    }
    if (s.lastError() != null) {
      return Check.warn("agent", null, "pid " + s.pid() + ", connected; last error: " + firstLine(s.lastError()),
          "see its log (journalctl -u uncloud-hook-agent or log_file)");
    }
    if (s.etcd() != null && !s.etcd().startsWith("watching ")) {
      return Check.warn("agent", null, "pid " + s.pid() + ", connected to " + s.uri() + "; etcd watch " + firstLine(s.etcd())
          + ": key changes wait until etcd answers", "start the etcd members, or correct etcd_endpoints; the agent retries by itself");
    }
    return Check.pass("agent", null, "pid " + s.pid() + ", connected to " + s.uri() + ", last resync "
        + (s.lastResyncMs() == 0 ? "not yet" : time(s.lastResyncMs())) + (s.etcd() == null ? "" : "; etcd: " + s.etcd()));
  }

  public static int exitCode(List<Check> checks) {
    boolean warn = false;
    for (Check c : checks) {
      if (c.status() == Check.Status.FAIL) {
        return ExitCodes.DOCTOR_FAILURES;
      }
      warn |= c.status() == Check.Status.WARN;
    }
    return warn ? ExitCodes.DOCTOR_WARNINGS : ExitCodes.OK;
  }

  /** Seconds-precision UTC time, e.g. {@code 2026-11-23T18:37:53Z}. */
  static String time(long millis) {
    return Instant.ofEpochMilli(millis).truncatedTo(ChronoUnit.SECONDS).toString();
  }

  private static String firstLine(String s) {
    if (s == null) {
      return "";
    }
    String t = s.strip();
    int nl = t.indexOf('\n');
    return nl < 0 ? t : t.substring(0, nl);
  }

  private static List<FileInfo> concat(FileInfo a, List<FileInfo> b) {
    List<FileInfo> out = new ArrayList<>();
    out.add(a);
    out.addAll(b);
    return out;
  }

  /**
   * {@code source = etcd}: every endpoint's answer ({@code version ...} or {@code unreachable: ...}; FAIL
   * when none answers, WARN for each one down while others answer) and the running domains without a
   * key (WARN: they get {@code unlisted}). Invalid values fail in {@link #domains}, disagreement with
   * what is installed in the drift checks, as for the metadata.
   */
  public static List<Check> etcd(Map<String, String> endpoints, Map<String, String> missingKeys, String unlisted) {
    List<Check> out = new ArrayList<>();
    boolean any = endpoints.values().stream().anyMatch(v -> v.startsWith("version"));
    endpoints.forEach((e, v) -> {
      if (v.startsWith("version")) {
        out.add(Check.pass("etcd-endpoint", e, "etcd " + v));
      } else if (any) {
        out.add(Check.warn("etcd-endpoint", e, v + "; the hook asks the next endpoint", "start that etcd member, or"
            + " drop it from etcd_endpoints"));
      } else {
        out.add(Check.fail("etcd-endpoint", e, v + "; no endpoint answers: the hook refuses every start and migration",
            "start the etcd cluster, or correct etcd_endpoints"));
      }
    });
    missingKeys.forEach((name, key) -> out.add(Check.warn("etcd-key", name, "no key " + key + ": every NIC gets unlisted = "
        + unlisted, "uncloud-hook etcd put " + name + " --file VALUE (or have the VM manager write it)")));
    return out;
  }
}
