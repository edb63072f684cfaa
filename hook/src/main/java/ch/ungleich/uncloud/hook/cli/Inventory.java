package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.host.DomainView;
import ch.ungleich.uncloud.hook.libvirt.LibvirtSession;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.nft.NftJson;
import ch.ungleich.uncloud.hook.nft.NftRunner;
import ch.ungleich.uncloud.hook.nft.NftScript;
import ch.ungleich.uncloud.hook.nft.NftState;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

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
    return of(s.domains(true, false), config);
  }

  private static Inventory of(List<LibvirtSession.DomainXml> xmls, Config config) {
    // parsing and checking 1000 domains is a third of a reconcile's own time: on every core
    List<DomainView> out = new ArrayList<>(xmls.parallelStream().map(x -> DomainView.of(x, config)).toList());
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

  /** UUIDs of every running domain. */
  Set<String> runningUuids() {
    Set<String> out = new LinkedHashSet<>();
    running().forEach(d -> out.add(d.uuid()));
    return out;
  }

  /** Taps of running domains whose metadata is invalid: reconcile leaves their rules as they are. */
  Set<String> untouchable() {
    Set<String> out = new LinkedHashSet<>();
    running().stream().filter(d -> d.policy() == null).forEach(d -> out.addAll(d.taps()));
    return out;
  }

  /** Whether our dispatch chain exists: {@code nft list chain} of one chain, as fast at 10 000 ports as at none. */
  static boolean dispatchChainExists(NftRunner nft) {
    return listOurs(nft, "list", "chain", NftScript.FAMILY, NftScript.TABLE, NftScript.BASE_CHAIN) != null;
  }

  /** Our table now; {@link NftState#ABSENT} when there is none. */
  static NftState observe(NftRunner nft) {
    String json = listOurs(nft, "-j", "list", "table", NftScript.FAMILY, NftScript.TABLE);
    return json == null ? NftState.ABSENT : NftJson.parse(json);
  }

  /** nft's output for a listing of our table or one of its chains; null when that does not exist. */
  private static String listOurs(NftRunner nft, String... args) {
    try {
      return nft.run(args);
    } catch (UncloudException e) {
      if (e.getMessage().contains("No such file or directory")) {
        return null;
      }
      throw new UncloudException(ExitCodes.APPLY_FAILED, "cannot list our nft table: " + e.getMessage());
    }
  }
}
