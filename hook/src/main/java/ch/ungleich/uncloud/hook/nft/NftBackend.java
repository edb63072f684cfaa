package ch.ungleich.uncloud.hook.nft;

import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.model.NicPolicy;
import ch.ungleich.uncloud.hook.state.Owner;
import ch.ungleich.uncloud.hook.state.Plan;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;

/**
 * Plans nft changes for one domain event. Pure: the ownership records come in as a function, the plan
 * goes out; {@code HookMain} applies it. An event touches only the domain's own taps.
 */
public final class NftBackend {
  private NftBackend() {}

  /**
   * Installs the domain's rules (start, reconnect). Taps the domain owned before but no longer has are
   * released; a bridged NIC that is not filtered (trusted, {@code unlisted = allow}) has any rules a
   * previous user of its tap left removed.
   */
  public static Plan start(DomainPolicy p, List<String> previousTaps, Function<String, Owner> ownerOf) {
    NftScript s = new NftScript().prelude();
    Map<String, Owner> claim = new LinkedHashMap<>();
    List<String> release = new ArrayList<>();
    Set<String> current = new LinkedHashSet<>();
    boolean touched = false;
    for (NicPolicy nic : p.nics()) {
      if (!nic.filterable() || nic.tap() == null) {
        continue;
      }
      touched = true;
      current.add(nic.tap());
      if (nic.hasChain()) {
        Owner o = new Owner(p.uuid(), nic.mac().text(), p.name());
        s.install(nic, o.comment());
        claim.put(nic.tap(), o);
      } else {
        s.remove(nic.tap());
        release.add(nic.tap());
      }
    }
    for (String tap : previousTaps) {
      Owner o = ownerOf.apply(tap);
      if (!current.contains(tap) && o != null && o.uuid().equals(p.uuid())) {
        s.remove(tap);
        release.add(tap);
        touched = true;
      }
    }
    return new Plan(touched ? s.render() : "", claim, release, List.copyOf(claim.keySet()));
  }

  /**
   * Removes the domain's rules (stopped, release): every tap it owns, unless the tap has been taken
   * over by another domain since (libvirt reuses {@code vnetN} names), in which case that domain's rules
   * stay untouched. Nothing to remove gives an empty script.
   */
  public static Plan stop(String uuid, List<String> previousTaps, Function<String, Owner> ownerOf) {
    NftScript s = new NftScript();
    List<String> release = new ArrayList<>();
    for (String tap : previousTaps) {
      Owner o = ownerOf.apply(tap);
      if (o != null && o.uuid().equals(uuid)) {
        if (s.isEmpty()) {
          s.prelude();
        }
        s.remove(tap);
        release.add(tap);
      }
    }
    return new Plan(s.render(), Map.of(), release, null);
  }
}
