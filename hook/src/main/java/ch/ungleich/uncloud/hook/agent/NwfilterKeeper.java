package ch.ungleich.uncloud.hook.agent;

import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.host.DomainView;
import ch.ungleich.uncloud.hook.libvirt.LibvirtSession;
import ch.ungleich.uncloud.hook.model.NicPolicy;
import ch.ungleich.uncloud.hook.nft.NftRunner;
import ch.ungleich.uncloud.hook.nwfilter.NwfilterBackend;
import ch.ungleich.uncloud.hook.nwfilter.NwfilterGuard;
import ch.ungleich.uncloud.hook.nwfilter.SyncPlan;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * The agent on nwfilter hosts: libvirt's nwfilter does the filtering, from each NIC's filterref; the
 * agent writes the live filterrefs the metadata asks for (a hot-plugged NIC gets ours, a metadata
 * change new parameters: {@code virDomainUpdateDeviceFlags}, live only) and keeps {@link NwfilterGuard}
 * so that no VM tap forwards while libvirt's rules for it are not complete: a tap is let on to
 * libvirt's chains only once libvirt has linked them (or when none of ours is to be bound to it); a
 * NIC whose filterref is about to change is held (dropped) in one transaction before the update,
 * because libvirt tears its old rules down before it builds the new ones, and let through in one
 * transaction once the new ones are linked. A brief outage for that NIC, never a leak.
 *
 * <p>Only the agent's worker thread calls this (the runner's pass).
 */
final class NwfilterKeeper {
  /** How long libvirt may take to link a NIC's new rules after the update returned. */
  static final long LINK_TIMEOUT_MS = 30_000;

  /** libvirt's live interface update. */
  interface Libvirt {
    void updateLive(String uuid, String interfaceXml);
  }

  /** What one pass did, for the log line. */
  record Result(int updated, int held, boolean wrote, List<String> notes) {}

  private final Config config;
  private final NftRunner nft;
  private final Supplier<? extends Collection<String>> links;
  private final Consumer<String> warn;
  private final Set<String> bound = new TreeSet<>();
  private final Set<String> hold = new TreeSet<>();
  private final Map<String, List<String>> tapsOf = new HashMap<>();
  private boolean installed;

  NwfilterKeeper(Config config, NftRunner nft, Supplier<? extends Collection<String>> links, Consumer<String> warn) {
    this.config = config;
    this.nft = nft;
    this.links = links;
    this.warn = warn;
  }

  /** A domain that is not running any more: its taps leave the sets (a new tap of that name is checked anew). */
  void gone(String uuid) {
    List<String> taps = tapsOf.remove(uuid);
    if (taps != null && (bound.removeAll(taps) | hold.removeAll(taps))) {
      write(bound, hold);
    }
  }

  /**
   * Makes the guard and the live filterrefs what these running domains demand. {@code all}: they are
   * every running domain (taps of no domain leave the sets); else only their taps change.
   */
  Result apply(List<LibvirtSession.DomainXml> xmls, List<DomainView> views, boolean all, Libvirt libvirt) {
    Set<String> linked = linked();
    Set<String> nb = new TreeSet<>(all ? Set.of() : bound);
    Set<String> nh = new TreeSet<>(all ? Set.of() : hold);
    Map<String, List<String>> oldTaps = new HashMap<>(tapsOf);
    if (all) {
      tapsOf.clear();
    }
    record Update(String uuid, String domain, String tap, String xml, NicPolicy nic) {}
    List<Update> updates = new ArrayList<>();
    List<String> notes = new ArrayList<>();
    for (int i = 0; i < views.size(); i++) {
      DomainView v = views.get(i);
      LibvirtSession.DomainXml x = xmls.get(i);
      List<String> taps = v.taps();
      List<String> before = oldTaps.getOrDefault(v.uuid(), List.of());
      nb.removeAll(before);
      nh.removeAll(before);
      tapsOf.put(v.uuid(), taps);
      List<NwfilterBackend.NicChange> plan = null;
      Map<String, String> after = new LinkedHashMap<>();
      if (v.policy() != null) {
        try {
          plan = NwfilterBackend.plan(v.policy(), v.live(), true);
          for (SyncPlan.Change c : SyncPlan.plan(x.liveXml(), SyncPlan.Where.LIVE, config)) {
            after.put(c.mac(), c.interfaceAfter());
          }
        } catch (UncloudException e) {
          plan = null;
          notes.add(v.name() + ": " + e.getMessage());
        }
      }
      if (plan == null) {
        // invalid metadata or a filterref not ours: libvirt's rules stay what they are; pass where linked
        for (String t : taps) {
          (bound.contains(t) || linked.contains(t) ? nb : nh).add(t);
        }
        continue;
      }
      for (NwfilterBackend.NicChange c : plan) {
        String tap = c.nic().tap();
        if (tap == null) {
          continue;
        }
        String xml = after.get(c.nic().mac().text());
        if (c.kind() != NwfilterBackend.Kind.KEEP && xml != null) {
          nh.add(tap);
          updates.add(new Update(v.uuid(), v.name(), tap, xml, c.nic()));
        } else if (NwfilterGuard.mayPass(c.nic(), linked)) {
          nb.add(tap);
        } else {
          nh.add(tap);
          notes.add(v.name() + " " + c.nic().name() + " " + tap + ": libvirt's rules for it are not linked: dropped");
        }
      }
    }
    boolean wrote = write(nb, nh);
    int done = 0;
    List<Update> waiting = new ArrayList<>();
    for (Update u : updates) {
      try {
        libvirt.updateLive(u.uuid(), u.xml());
        done++;
        waiting.add(u);
      } catch (UncloudException e) {
        // (a NIC detached meanwhile, say): held; the next event or resync looks at it again
        warn.accept(u.domain() + " " + u.nic().name() + " " + u.tap() + ": " + e.getMessage() + "; its tap stays dropped");
      }
    }
    if (!waiting.isEmpty()) {
      long deadline = System.currentTimeMillis() + LINK_TIMEOUT_MS;
      while (true) {
        Set<String> now = linked();
        Set<String> exist = new TreeSet<>(links.get());
        waiting.removeIf(u -> !exist.contains(u.tap())); // gone: nothing to wait for
        waiting.removeIf(u -> {
          if (NwfilterBackend.expected(u.nic()) == null || now.contains(u.tap())) {
            nh.remove(u.tap());
            nb.add(u.tap());
            return true;
          }
          return false;
        });
        if (waiting.isEmpty() || System.currentTimeMillis() > deadline) {
          break;
        }
        sleep(20);
      }
      for (Update u : waiting) {
        notes.add(u.domain() + " " + u.nic().name() + " " + u.tap() + ": libvirt linked no rules for it within "
            + LINK_TIMEOUT_MS / 1000 + " s: dropped");
      }
      wrote |= write(nb, nh);
    }
    return new Result(done, nh.size(), wrote, notes);
  }

  /** Whether the guard is installed as last written, and libvirt's rules still linked for every filtered tap. */
  boolean intact() {
    if (!installed) {
      return false;
    }
    if (!check()) {
      installed = false; // the next apply writes the table whatever it remembers
      return false;
    }
    return true;
  }

  private boolean check() {
    String t;
    try {
      t = nft.run("list", "table", NwfilterGuard.FAMILY, NwfilterGuard.TABLE);
    } catch (UncloudException e) {
      return false;
    }
    if (!NwfilterGuard.chainIntact(t, config.vmTaps().patterns())) {
      return false;
    }
    Set<String> have = new TreeSet<>(links.get());
    Set<String> b = new TreeSet<>(bound);
    Set<String> h = new TreeSet<>(hold);
    b.retainAll(have);
    h.retainAll(have);
    return NwfilterGuard.members(t, NwfilterGuard.BOUND).equals(b) && NwfilterGuard.members(t, NwfilterGuard.HOLD).equals(h);
  }

  /** Taps with libvirt's root chain linked (ebtables-nft's {@code table bridge nat}); empty when there is none. */
  private Set<String> linked() {
    try {
      return NwfilterGuard.linked(nft.run("list", "chain", "bridge", "nat", "PREROUTING"));
    } catch (UncloudException e) {
      return Set.of();
    }
  }

  /** One transaction: the whole table with these sets (only existing interfaces can be named). */
  private boolean write(Set<String> nb, Set<String> nh) {
    if (installed && nb.equals(bound) && nh.equals(hold)) {
      return false; // a lost table is the monitor's and intact()'s to find
    }
    Set<String> have = new TreeSet<>(links.get());
    Set<String> b = new TreeSet<>(nb);
    Set<String> h = new TreeSet<>(nh);
    b.retainAll(have);
    h.retainAll(have);
    h.forEach(b::remove);
    nft.apply(NwfilterGuard.script(config.vmTaps().patterns(), b, h));
    installed = true;
    bound.clear();
    bound.addAll(nb);
    hold.clear();
    hold.addAll(nh);
    return true;
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
