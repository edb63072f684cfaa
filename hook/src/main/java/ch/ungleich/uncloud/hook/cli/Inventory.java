package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.engine.Desired;
import ch.ungleich.uncloud.hook.engine.Timings;
import ch.ungleich.uncloud.hook.host.DomainView;
import ch.ungleich.uncloud.hook.libvirt.LibvirtSession;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.source.AddressSource;
import java.util.ArrayList;
import java.util.List;

/** The domains of a host as libvirt reports them, with the policy the hook derives for each. */
final class Inventory {
  final Config config;
  final List<DomainView> domains;

  Inventory(Config config, List<DomainView> domains) {
    this.config = config;
    this.domains = domains;
  }

  /** Reads every domain (or only the running ones) through one libvirt connection. */
  static Inventory read(LibvirtSession s, Config config, boolean activeOnly) {
    return of(s.domains(activeOnly), config);
  }

  /** The running domains with their live XML only: all that reconcile reads. */
  static Inventory running(LibvirtSession s, Config config) {
    return running(s, config, Timings.OFF);
  }

  static Inventory running(LibvirtSession s, Config config, Timings t) {
    List<LibvirtSession.DomainXml> xmls = s.domains(true, false);
    t.mark("libvirt list + XML");
    Inventory inv = of(xmls, config);
    t.mark("read XML + policies");
    return inv;
  }

  private static Inventory of(List<LibvirtSession.DomainXml> xmls, Config config) {
    // parsing and checking 1000 domains is a third of a reconcile's own time: on every core
    AddressSource src = AddressSource.of(config);
    List<DomainView> out = new ArrayList<>(xmls.parallelStream().map(x -> DomainView.of(x, config, src)).toList());
    out.sort((a, b) -> a.name().compareTo(b.name()));
    return new Inventory(config, List.copyOf(out));
  }

  List<DomainView> running() {
    return domains.stream().filter(DomainView::active).toList();
  }

  /** Policies of the running domains whose metadata is valid. */
  List<DomainPolicy> policies() {
    return running().stream().filter(d -> d.policy() != null).map(DomainView::policy).toList();
  }

  /** What the running domains demand, for the engine. */
  Desired desired() {
    return DomainView.desired(running());
  }
}
