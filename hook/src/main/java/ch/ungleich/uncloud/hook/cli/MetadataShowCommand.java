package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.host.DomainView;
import ch.ungleich.uncloud.hook.libvirt.LibvirtSession;
import ch.ungleich.uncloud.libvirtxml.firewall.Firewall;
import ch.ungleich.uncloud.libvirtxml.firewall.FirewallInterface;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code uncloud-hook metadata show DOMAIN}. */
@Command(
    name = "show",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Prints the domain's metadata element as libvirt stores it, live (what the hook enforces now)",
      "and persistent (what the next start uses), and whether they agree and are valid."
    },
    exitCodeListHeading = "%nExit codes:%n",
    exitCodeList = {
      "0:shown (also when there is none)",
      "1:shown, but it is invalid: the hook refuses to start the domain",
      "2:wrong command line",
      "3:libvirt could not be asked, or no such domain"
    })
final class MetadataShowCommand implements Callable<Integer> {
  @Mixin CommonOptions common;

  @Parameters(index = "0", paramLabel = "DOMAIN", description = "Name or UUID.")
  String domain;

  @Spec CommandSpec spec;

  /**
   * The {@code --json} shape.
   *
   * @param live the live element, null when the domain is not running or has none
   * @param config the persistent element, null when the domain is transient or has none
   * @param agree whether live and persistent say the same (always true unless both exist)
   * @param error why the metadata is invalid, else null
   */
  record Result(
      String domain, String uuid, boolean running, boolean persistent, Element live, Element config, boolean agree,
      String error) {}

  /** One element: libvirt's text and what it says per NIC. */
  record Element(String xml, List<Nic> interfaces) {}

  record Nic(String mac, boolean trusted, List<String> ips) {}

  @Override
  public Integer call() {
    Config cfg = common.loadConfig();
    DomainView v;
    String liveXml = null;
    String configXml = null;
    try (LibvirtSession s = LibvirtSession.open(common.uri())) {
      LibvirtSession.DomainXml x = s.domain(domain);
      v = DomainView.of(x, cfg);
      if (x.active()) {
        liveXml = s.metadata(domain, Firewall.NAMESPACE, false);
      }
      if (x.configXml() != null) {
        configXml = s.metadata(domain, Firewall.NAMESPACE, true);
      }
    }
    String error = v.error() != null ? v.error() : v.configError();
    Result r =
        new Result(
            v.name(), v.uuid(), v.active(), v.persistent(), element(liveXml, v.liveMetadata()),
            element(configXml, v.configMetadata()), v.metadataAgree(), error);
    PrintWriter out = spec.commandLine().getOut();
    if (common.json()) {
      Json.print(out, r);
    } else {
      if (r.running()) {
        out.println("# " + r.domain() + " live metadata (enforced now):");
        out.println(liveXml == null ? "(none)" : liveXml.strip());
      }
      if (r.persistent()) {
        if (r.running() && r.agree()) {
          out.println("# persistent metadata (next start): same as live");
        } else {
          out.println("# " + r.domain() + " persistent metadata (next start, migration with --persistent):");
          out.println(configXml == null ? "(none)" : configXml.strip());
        }
      }
      if (!r.agree()) {
        out.println("# live and persistent metadata DIFFER: a restart changes the rules");
      }
      out.flush();
    }
    if (error != null) {
      spec.commandLine().getErr().println("uncloud-hook: invalid metadata: " + error);
      return ExitCodes.INVALID;
    }
    return ExitCodes.OK;
  }

  private static Element element(String xml, Firewall fw) {
    if (xml == null) {
      return null;
    }
    List<Nic> nics = new ArrayList<>();
    if (fw != null) {
      for (FirewallInterface i : fw.interfaces) {
        List<String> ips = new ArrayList<>();
        i.ips.forEach(ip -> ips.add(ip.address));
        boolean trusted = i.trusted != null && (i.trusted.strip().equals("true") || i.trusted.strip().equals("1"));
        nics.add(new Nic(i.mac, trusted, ips));
      }
    }
    return new Element(xml.strip(), nics);
  }
}
