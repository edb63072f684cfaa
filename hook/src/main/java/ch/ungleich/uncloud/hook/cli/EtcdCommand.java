package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.libvirt.LibvirtSession;
import ch.ungleich.uncloud.hook.metadata.PolicyBuilder;
import ch.ungleich.uncloud.hook.source.AddressSource;
import ch.ungleich.uncloud.hook.source.EtcdClient;
import ch.ungleich.uncloud.hook.source.EtcdValue;
import ch.ungleich.uncloud.libvirtxml.DomainReader;
import ch.ungleich.uncloud.libvirtxml.domain.Domain;
import ch.ungleich.uncloud.libvirtxml.firewall.Firewall;
import ch.ungleich.uncloud.libvirtxml.firewall.FirewallInterface;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code uncloud-hook etcd get|put|import}: the domains' etcd keys of {@code source = etcd}. */
@Command(
    name = "etcd",
    mixinStandardHelpOptions = true,
    description = {
      "Reads and writes the domains' keys in etcd (source = etcd; the etcd_* settings say where),",
      "validated exactly as the hook validates them."
    },
    subcommands = {EtcdGetCommand.class, EtcdPutCommand.class, EtcdImportCommand.class, CommandLine.HelpCommand.class})
final class EtcdCommand implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    throw new CommandLine.ParameterException(spec.commandLine(), "missing subcommand: get, put or import");
  }

  /**
   * One NIC of a value, as {@code --json} shows it.
   *
   * @param ingress its ingress allows; null without {@code ingress} (empty: only replies may reach it)
   * @param egress its egress allows; null without {@code egress}
   */
  record Nic(String mac, boolean trusted, List<String> ips, List<Rule> ingress, List<Rule> egress) {}

  /** One allow of a NIC's ingress or egress, its attributes as the value has them (null: not given). */
  record Rule(String protocol, String port, String from, String to) {}

  /** The client for the configured endpoints (also with {@code source = metadata}: to import before switching). */
  static EtcdClient client(Config cfg) {
    if (cfg.etcd().endpoints().isEmpty()) {
      throw UncloudException.invalid("no etcd_endpoints in the host settings");
    }
    return new EtcdClient(cfg.etcd());
  }

  /** The domain as the hook sees it now: the live definition of a running domain, else the persistent one. */
  static Domain domain(String uri, String nameOrUuid) {
    try (LibvirtSession s = LibvirtSession.open(uri)) {
      LibvirtSession.DomainXml x = s.domain(nameOrUuid);
      return DomainReader.read(x.active() ? x.liveXml() : x.configXml() != null ? x.configXml() : x.liveXml());
    }
  }

  /** Checks {@code value} for domain {@code d} as the hook would; returns what it says per NIC. */
  static List<Nic> validate(String value, Domain d, String key, Config cfg) {
    Firewall fw = EtcdValue.parse(value, d, key);
    PolicyBuilder.build(AddressSource.with(d, fw), cfg);
    return nics(fw);
  }

  static List<Nic> nics(Firewall fw) {
    List<Nic> out = new ArrayList<>();
    for (FirewallInterface i : fw.interfaces) {
      List<String> ips = new ArrayList<>();
      i.ips.forEach(ip -> ips.add(ip.address.strip()));
      out.add(new Nic(i.mac, "true".equals(i.trusted), ips, rules(i.ingress), rules(i.egress)));
    }
    return out;
  }

  private static List<Rule> rules(FirewallInterface.Rules r) {
    return r == null ? null : r.allows.stream().map(a -> new Rule(a.protocol, a.port, a.from, a.to)).toList();
  }
}
