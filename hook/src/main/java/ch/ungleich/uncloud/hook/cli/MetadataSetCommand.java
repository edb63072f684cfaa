package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.doctor.Checks;
import ch.ungleich.uncloud.hook.host.DomainView;
import ch.ungleich.uncloud.hook.libvirt.LibvirtSession;
import ch.ungleich.uncloud.hook.metadata.PolicyBuilder;
import ch.ungleich.uncloud.hook.model.IpPrefix;
import ch.ungleich.uncloud.hook.model.Mac;
import ch.ungleich.uncloud.libvirtxml.LibvirtXml;
import ch.ungleich.uncloud.libvirtxml.XmlException;
import ch.ungleich.uncloud.libvirtxml.domain.Domain;
import ch.ungleich.uncloud.libvirtxml.domain.Metadata;
import ch.ungleich.uncloud.libvirtxml.firewall.Firewall;
import ch.ungleich.uncloud.libvirtxml.firewall.FirewallInterface;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code uncloud-hook metadata set DOMAIN --mac M --ip A [--ip B ...] [--trusted] ...}. */
@Command(
    name = "set",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Writes the domain's metadata: each --mac group replaces that NIC's entry (other NICs'",
      "entries stay, unless --replace). Everything is validated against the domain's NICs with the",
      "hook's own rules before anything is written. Writes the live and the persistent definition",
      "(whichever exist) unless --live or --config is given. The rules of a running domain change",
      "at its next start, or now with --apply (runs reconcile)."
    },
    exitCodeListHeading = "%nExit codes:%n",
    exitCodeList = {
      "0:written",
      "1:invalid: nothing was written",
      "2:wrong command line",
      "3:libvirt (or, with --apply, nft) failed; see the message for what was written",
      "4:--apply: another uncloud-hook held the host lock for longer than lock_timeout"
    })
final class MetadataSetCommand implements Callable<Integer> {
  @Mixin CommonOptions common;

  @Parameters(index = "0", paramLabel = "DOMAIN", description = "Name or UUID.")
  String domain;

  @ArgGroup(exclusive = false, multiplicity = "0..*", heading = "%nPer NIC (repeat the group for several NICs):%n")
  List<NicArgs> nics = new ArrayList<>();

  static final class NicArgs {
    @Option(names = "--mac", required = true, paramLabel = "MAC", description = "The NIC, by its MAC address.")
    String mac;

    @Option(names = "--ip", paramLabel = "ADDRESS", description = "An allowed source address or prefix (repeatable).")
    List<String> ips = new ArrayList<>();

    @Option(names = "--trusted", description = "Do not filter this NIC at all (a router VM).")
    boolean trusted;
  }

  @Option(names = "--remove", paramLabel = "MAC", description = "Remove this NIC's entry (repeatable).")
  List<String> remove = new ArrayList<>();

  @Option(names = "--replace", description = "Drop every entry not given here (with no --mac: remove our element).")
  boolean replace;

  @Option(names = "--live", description = "Write only the running definition.")
  boolean live;

  @Option(names = "--config", description = "Write only the persistent definition.")
  boolean config;

  @Option(names = "--apply", description = "Then run reconcile, so a running domain's rules change now.")
  boolean apply;

  @Option(names = "--force", description = "Write even if an address is also claimed by another domain of this host.")
  boolean force;

  @Spec CommandSpec spec;

  /**
   * The {@code --json} shape.
   *
   * @param written which definitions were written: {@code live}, {@code config}
   * @param xml the element written (null when it was removed)
   * @param reconcile with --apply: reconcile's result, else null
   */
  record Result(String domain, String uuid, List<String> written, String xml, ReconcileCommand.Result reconcile) {}

  @Override
  public Integer call() {
    Config cfg = common.loadConfig();
    if (nics.isEmpty() && remove.isEmpty() && !replace) {
      throw new UncloudException(ExitCodes.USAGE, "nothing to set: give --mac MAC [--ip ADDRESS ...], --remove MAC or --replace");
    }
    try (LibvirtSession s = LibvirtSession.open(common.uri())) {
      LibvirtSession.DomainXml x = s.domain(domain);
      DomainView v = DomainView.of(x, cfg);
      boolean wantLive = live || !config;
      boolean wantConfig = config || !live;
      List<String> targets = new ArrayList<>();
      if (wantLive && x.active()) {
        targets.add("live");
      } else if (live) {
        throw UncloudException.invalid(v.name() + " is not running: there is no live definition to write (use --config)");
      }
      if (wantConfig && x.configXml() != null) {
        targets.add("config");
      } else if (config) {
        throw UncloudException.invalid(v.name() + " is transient: there is no persistent definition to write (use --live)");
      }
      Firewall liveFw = null;
      Firewall configFw = null;
      List<String> notYet = new ArrayList<>();
      for (String t : targets) {
        boolean isLive = t.equals("live");
        Domain d = isLive ? v.live() : v.config();
        if (d == null) {
          throw UncloudException.invalid(
              v.name() + " " + t + " definition: " + (isLive ? v.error() : v.configError())
                  + (replace ? "" : " (use --replace to overwrite the metadata)"));
        }
        Firewall now = replace ? null : (isLive ? v.liveMetadata() : v.configMetadata());
        Firewall next = edit(now);
        for (String w : validate(v.name(), t, d, next, cfg)) {
          if (w.contains("no such NIC yet") && !notYet.contains(w)) {
            notYet.add(w);
          }
        }
        if (isLive) {
          liveFw = next;
        } else {
          configFw = next;
        }
      }
      if (!force) {
        List<DomainView> all = Inventory.read(s, cfg, false).domains;
        List<String> clash = new ArrayList<>();
        for (Firewall f : new Firewall[] {liveFw, configFw}) {
          if (f != null) {
            for (String c : Checks.conflictsWith(v.name(), f, all)) {
              if (!clash.contains(c)) {
                clash.add(c);
              }
            }
          }
        }
        if (!clash.isEmpty()) {
          throw UncloudException.invalid(
              v.name() + ": " + String.join("; ", clash) + ": one address belongs to one domain (nothing was written;"
                  + " --force writes anyway, e.g. while moving an address)");
        }
      }
      // validated everything: now write, in one call when both definitions get the same element
      List<String> written = new ArrayList<>();
      String xmlShown = null;
      String liveXml = liveFw == null || liveFw.interfaces.isEmpty() ? null : LibvirtXml.writeFirewall(liveFw);
      String configXml = configFw == null || configFw.interfaces.isEmpty() ? null : LibvirtXml.writeFirewall(configFw);
      if (targets.size() == 2 && DomainView.normal(liveFw).equals(DomainView.normal(configFw))) {
        s.setMetadata(domain, Firewall.NAMESPACE, "uc", forLibvirt(liveXml), LibvirtSession.AFFECT_LIVE | LibvirtSession.AFFECT_CONFIG);
        written.addAll(targets);
        xmlShown = liveXml;
      } else {
        for (String t : targets) {
          boolean isLive = t.equals("live");
          try {
            s.setMetadata(
                domain, Firewall.NAMESPACE, "uc", forLibvirt(isLive ? liveXml : configXml),
                isLive ? LibvirtSession.AFFECT_LIVE : LibvirtSession.AFFECT_CONFIG);
          } catch (UncloudException e) {
            throw new UncloudException(
                e.exitCode(), e.getMessage() + (written.isEmpty() ? "" : " (the " + written + " definition was written already)"), e);
          }
          written.add(t);
          xmlShown = isLive ? liveXml : configXml;
        }
      }
      ReconcileCommand.Result rec = null;
      if (apply) {
        if (!cfg.backend().equals("nft")) {
          throw UncloudException.invalid("--apply: backend " + cfg.backend() + " is applied with 'uncloud-hook sync " + v.name() + "'");
        }
        rec = ReconcileCommand.run(Inventory.running(s, cfg), cfg, false);
        ReconcileCommand.warn(spec.commandLine().getErr(), rec);
      }
      for (String w : notYet) {
        spec.commandLine().getErr().println("uncloud-hook: note: " + w);
      }
      spec.commandLine().getErr().flush();
      Result r = new Result(v.name(), v.uuid(), written, xmlShown, rec);
      PrintWriter out = spec.commandLine().getOut();
      if (common.json()) {
        Json.print(out, r);
      } else {
        out.println(
            v.name() + ": metadata " + (xmlShown == null ? "removed from" : "written to") + " the " + String.join(" and ", written)
                + " definition" + (written.size() > 1 ? "s" : ""));
        if (xmlShown != null) {
          out.println(xmlShown.strip());
        }
        if (rec != null) {
          ReconcileCommand.print(out, rec);
        } else if (written.contains("live")) {
          out.println("the running domain's rules are unchanged until its next start; apply now: uncloud-hook reconcile");
        }
        out.flush();
      }
      return ExitCodes.OK;
    }
  }

  /**
   * The element as virDomainSetMetadata wants it: without namespace. libvirt puts the element and its
   * children into the namespace given with the key as prefix itself (what {@code virsh metadata --key uc
   * --set} does), and refuses an element that already declares that prefix ("failed to create a new
   * XML namespace"). {@link LibvirtXml#writeFirewall}'s output differs from that only in the
   * {@code uc:} prefixes and their declaration; attribute values are escaped, so no '<' is in them.
   */
  static String forLibvirt(String xml) {
    if (xml == null) {
      return null;
    }
    return xml.replace(" xmlns:uc=\"" + Firewall.NAMESPACE + "\"", "").replace("<uc:", "<").replace("</uc:", "</");
  }

  /** The current element with the command line's changes applied (a new object; {@code now} untouched). */
  Firewall edit(Firewall now) {
    Firewall f = new Firewall();
    List<Mac> given = new ArrayList<>();
    for (NicArgs n : nics) {
      Mac m = Mac.parse(n.mac);
      if (given.contains(m)) {
        throw UncloudException.invalid("--mac " + m + " is given twice");
      }
      given.add(m);
    }
    List<Mac> removed = new ArrayList<>();
    for (String r : remove) {
      removed.add(Mac.parse(r));
    }
    if (now != null) {
      for (FirewallInterface i : now.interfaces) {
        Mac m;
        try {
          m = Mac.parse(i.mac);
        } catch (UncloudException e) {
          m = null;
        }
        if (m != null && (given.contains(m) || removed.contains(m))) {
          continue;
        }
        f.interfaces.add(i);
      }
    }
    for (NicArgs n : nics) {
      FirewallInterface i = new FirewallInterface();
      i.mac = Mac.parse(n.mac).text();
      i.trusted = n.trusted ? "true" : null;
      for (String ip : n.ips) {
        try {
          i.ips.add(new FirewallInterface.Ip(IpPrefix.parse(ip).toString()));
        } catch (UncloudException e) {
          throw UncloudException.invalid("--mac " + i.mac + " --ip: " + e.getMessage());
        }
      }
      f.interfaces.add(i);
    }
    return f;
  }

  /** The hook's own checks on the definition as it would be; throws (exit 1) before anything is written. */
  /** Checks the new element against the definition; returns the policy's warnings (a NIC not attached yet). */
  static List<String> validate(String name, String target, Domain d, Firewall next, Config cfg) {
    if (!next.interfaces.isEmpty()) {
      try {
        LibvirtXml.readFirewall(LibvirtXml.writeFirewall(next));
      } catch (XmlException e) {
        throw UncloudException.invalid(name + " (" + target + "): " + e.getMessage());
      }
    }
    if (d.metadata == null) {
      d.metadata = new Metadata();
    }
    d.metadata.firewall = next.interfaces.isEmpty() ? null : next;
    try {
      return PolicyBuilder.build(d, cfg).warnings();
    } catch (UncloudException e) {
      throw UncloudException.invalid(e.getMessage() + " (" + target + " definition; nothing was written)");
    }
  }
}
