package ch.ungleich.uncloud.hook.agent;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.engine.Reconcile;
import ch.ungleich.uncloud.hook.engine.Rules;
import ch.ungleich.uncloud.hook.host.DomainView;
import ch.ungleich.uncloud.hook.host.LinuxHost;
import ch.ungleich.uncloud.hook.libvirt.LibvirtEvents;
import ch.ungleich.uncloud.hook.libvirt.LibvirtSession;
import ch.ungleich.uncloud.hook.log.Log;
import ch.ungleich.uncloud.hook.model.NicPolicy;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.nft.InboundScript;
import ch.ungleich.uncloud.hook.nft.NftMonitor;
import ch.ungleich.uncloud.hook.nft.NftNotifications;
import ch.ungleich.uncloud.hook.nft.NftRunner;
import ch.ungleich.uncloud.hook.nft.NftScript;
import ch.ungleich.uncloud.hook.nft.NftState;
import ch.ungleich.uncloud.hook.nft.ProcessNftRunner;
import ch.ungleich.uncloud.hook.nft.ReconcilePlan;
import ch.ungleich.uncloud.hook.nwfilter.NwfilterGuard;
import ch.ungleich.uncloud.hook.source.AddressSource;
import ch.ungleich.uncloud.hook.state.AgentStatus;
import ch.ungleich.uncloud.hook.state.StateStore;
import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.locks.ReadWriteLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * {@code uncloud-hook agent}: keeps the host's rules what libvirt's running domains demand between
 * hook calls. It decides only WHEN the engine runs and for what: libvirt's domain events (lifecycle,
 * device added/removed, metadata change) mark one domain, {@code nft monitor} removals from our table
 * and every (re)connect mark the whole host, and the {@link Runner} applies through {@link Rules}
 * (one domain) or {@link Reconcile} (the whole host), under the same host lock as hook calls.
 *
 * <p>State is per running domain (what it was read as, what was applied for it), never per event.
 * Everything the agent does is one line on stderr and in {@code log_file}; {@code state_dir/agent.json}
 * tells doctor and status what it did.
 */
public final class Agent {
  /** Minimum time between two passes, and the settle time that gathers a burst into one pass. */
  static final long MIN_INTERVAL_MS = 50;
  static final long SETTLE_MS = 10;
  private static final String PART_DELETED = "part of table bridge uncloud deleted";

  private final Config config;
  private final String uri;
  private final PrintStream err;
  private final Log log;
  private final NftRunner nft;
  /** The agent's nft runner, which knows the generations of its own transactions. */
  private final OwnTransactions own;
  /** backend = nft: the kernel's notifications (null with nwfilter, which uses {@link #monitor}). */
  private NftNotifications notifications;
  /** What foreign transactions took since the last pass (guarded by itself). */
  private Damage pending = Damage.NONE;
  private final StateStore store;
  private final LinuxHost host = new LinuxHost();
  private final Rules rules;
  private final Runner runner;
  private final FightGuard fight = new FightGuard(5, 10_000, 60_000);
  /** backend = nwfilter: the live filterrefs and the guard table (null with nft). */
  private final NwfilterKeeper nwfilter;

  /** Running domains as last read (the restore after a lost ruleset plans from these). */
  private final Map<String, DomainView> known = new ConcurrentHashMap<>();
  /** What was applied per running domain (agent.json). */
  private final Map<String, AgentStatus.Applied> applied = new ConcurrentHashMap<>();
  /** Why a domain is marked (its last event), for the log line. */
  private final Map<String, String> reasons = new ConcurrentHashMap<>();

  /** The connection; replaced under the write lock, read under the read lock. */
  private final ReadWriteLock connLock = new ReentrantReadWriteLock();
  private LibvirtEvents events;
  private volatile boolean everRead;
  private volatile String fullReason = "start";
  private volatile long lossSeenMs;

  private final long startedMs = System.currentTimeMillis();
  private volatile long connectedMs;
  private volatile long lastResyncMs;
  private volatile String lastError;
  private volatile boolean statusWriteFailed;
  private NftMonitor monitor;
  private volatile boolean stopping;
  /** {@code source = etcd}: the watch of the prefix and the agent's copy of its keys; else null. */
  private final EtcdWatch etcdWatch;

  public Agent(Config config, String uri, PrintStream err) {
    this.config = config;
    this.uri = uri;
    this.err = err;
    this.log = new Log(err);
    log.toFile(config.logFile());
    this.own = new OwnTransactions(new ProcessNftRunner(config.nft()), config.backend().equals("nft") ? this::uncertain : () -> { });
    this.nft = own;
    this.store = new StateStore(config.stateDir(), config.lockTimeoutSeconds());
    this.rules = new Rules(store, nft, config.vmTaps(), host::links);
    this.nwfilter = config.backend().equals("nwfilter")
        ? new NwfilterKeeper(config, nft, host::links, w -> log.warn("agent: " + w)) : null;
    this.runner = new Runner(this::sync, MIN_INTERVAL_MS, SETTLE_MS, config.agentResyncSeconds() * 1000L, 200, 5_000);
    this.etcdWatch = config.etcd().etcd()
        ? new EtcdWatch(config, this::etcdChanged, this::say, log::warn, this::writeStatus) : null;
  }

  /** Runs until the process is told to stop (SIGTERM/SIGINT); reconnects to libvirt forever. */
  public void run() {
    LibvirtEvents.startLoop();
    Runtime.getRuntime().addShutdownHook(new Thread(this::shutdown, "agent-stop"));
    startMonitor();
    runner.start();
    if (etcdWatch != null) {
      etcdWatch.start();
      etcdWatch.awaitFirstRead((long) config.etcd().endpoints().size() * 2 * config.etcd().timeoutMillis());
    }
    say("started (pid " + ProcessHandle.current().pid() + ", libvirt " + uri + ", resync every "
        + config.agentResyncSeconds() + " s)");
    writeStatus();
    long backoffMs = 250;
    String lastFailure = null;
    while (!stopping) {
      CountDownLatch closed = new CountDownLatch(1);
      String[] why = {"closed"};
      LibvirtEvents ev;
      try {
        ev = LibvirtEvents.open(uri, listener(closed, why));
      } catch (UncloudException e) {
        if (!e.getMessage().equals(lastFailure)) {
          log.warn("agent: " + e.getMessage() + " (retrying)");
          lastFailure = e.getMessage();
          lastError = e.getMessage();
          writeStatus();
        }
        sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 5_000);
        continue;
      }
      connLock.writeLock().lock();
      events = ev;
      connLock.writeLock().unlock();
      connectedMs = System.currentTimeMillis();
      backoffMs = 250;
      lastFailure = null;
      say("connected to " + uri + ": full resync");
      fullReason = "connected";
      runner.markAll(true);
      runner.retryNow();
      writeStatus();
      try {
        closed.await();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
      connLock.writeLock().lock();
      try {
        events = null;
        ev.close();
      } finally {
        connLock.writeLock().unlock();
      }
      if (!stopping) {
        lastError = "lost the connection to " + uri + " (" + why[0] + ")";
        log.warn("agent: " + lastError + "; reconnecting");
        writeStatus();
      }
    }
  }

  private LibvirtEvents.Listener listener(CountDownLatch closed, String[] why) {
    return new LibvirtEvents.Listener() {
      @Override
      public void domainEvent(LibvirtEvents.Kind kind, String uuid, String name, String detail) {
        if (uuid == null || !relevant(kind, detail)) {
          return;
        }
        reasons.put(uuid, describe(kind, detail));
        runner.markDomain(uuid);
      }

      @Override
      public void closed(String reason) {
        why[0] = reason;
        closed.countDown();
      }
    };
  }

  /** Lifecycle: started, stopped, crashed (the rest change no NIC); metadata: our namespace only. */
  static boolean relevant(LibvirtEvents.Kind kind, String detail) {
    return switch (kind) {
      case LIFECYCLE -> detail.startsWith("2/") || detail.startsWith("5/") || detail.startsWith("8/");
      case METADATA_CHANGE -> ch.ungleich.uncloud.libvirtxml.firewall.Firewall.NAMESPACE.equals(detail);
      case DEVICE_ADDED, DEVICE_REMOVED -> true;
    };
  }

  private static String describe(LibvirtEvents.Kind kind, String detail) {
    return switch (kind) {
      case LIFECYCLE -> detail.startsWith("2/") ? "started" : detail.startsWith("5/") ? "stopped" : "crashed";
      case METADATA_CHANGE -> "metadata changed";
      case DEVICE_ADDED -> "device " + detail + " added";
      case DEVICE_REMOVED -> "device " + detail + " removed";
    };
  }

  // ------------------------------------------------------------------ nft monitor

  private void startMonitor() {
    if (nftBackend()) {
      try {
        notifications = NftNotifications.start(WATCHED, own::ours, own::oursLow, this::generation, this::notificationsEnded);
        return;
      } catch (IllegalStateException e) {
        log.warn("agent: " + e.getMessage() + "; watching with '" + config.nft() + " -j monitor' instead");
      }
    }
    try {
      monitor = NftMonitor.start(config.nft(), nftBackend() ? NftScript.TABLE : NwfilterGuard.TABLE, this::lost,
          this::monitorEnded);
    } catch (IOException e) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, "cannot run " + config.nft() + " monitor: " + e.getMessage());
    }
  }

  private void lost(NftMonitor.Loss loss) {
    long now = System.currentTimeMillis();
    if (loss == NftMonitor.Loss.TABLE) {
      long delay = fight.deleted(now);
      if (delay > 0) {
        lastError = "something keeps deleting table bridge uncloud (" + fight.recent(now)
            + " times in 10 s): restores wait " + delay / 1000 + " s; find it with 'nft monitor' and stop it";
        log.error("agent: " + lastError);
        runner.holdUntil(now + delay);
        writeStatus();
      }
      fullReason = "table bridge uncloud deleted";
    } else {
      if (fight.fighting(now)) {
        // a deletion's first lines while we are being fought: wait for its table line's hold
        runner.holdUntil(now + 1000);
      }
      if (!"table bridge uncloud deleted".equals(fullReason)) {
        fullReason = PART_DELETED;
      }
    }
    if (lossSeenMs == 0) {
      lossSeenMs = now;
    }
    runner.markAll(false);
  }

  /** Our tables, as the notifications name them. */
  static final Set<NftNotifications.Table> WATCHED = Set.of(
      new NftNotifications.Table(NftNotifications.BRIDGE, NftScript.TABLE),
      new NftNotifications.Table(NftNotifications.BRIDGE, InboundScript.TABLE),
      new NftNotifications.Table(NftNotifications.INET, InboundScript.TABLE));

  /**
   * One foreign transaction committed (a hook call, another tool, {@code nft flush ruleset}): what it
   * took from our tables decides what the next pass restores; nothing (a hook call flushes and refills
   * the dispatch chain in one transaction) marks nothing. O(notifications of that transaction), never
   * a listing.
   */
  private void generation(NftNotifications.Generation g) {
    Damage d = g.lost() ? Damage.UNKNOWN : damage(g.events());
    if (d.none()) {
      return;
    }
    synchronized (this) {
      pending = pending.merge(d);
    }
    lost(d.table() ? NftMonitor.Loss.TABLE : NftMonitor.Loss.PART);
    if (d.unknown()) {
      fullReason = "nf_tables notifications lost (receive buffer full)";
    } else if (!d.table() && !d.dispatch() && d.taps().isEmpty() && "part of table bridge uncloud deleted".equals(fullReason)) {
      fullReason = "part of the inbound tables deleted";
    }
  }

  /** Our transaction's generation id could not be told apart from another's: check as after a foreign one. */
  private void uncertain() {
    synchronized (this) {
      pending = pending.merge(Damage.UNKNOWN);
    }
    fullReason = "a transaction raced the agent's";
    runner.markAll(false);
  }

  private void notificationsEnded(String why) {
    if (stopping) {
      return;
    }
    log.warn("agent: " + why + "; subscribing again and checking in case a change was missed");
    sleep(1000);
    if (!stopping) {
      notifications = null;
      startMonitor();
      uncertain();
    }
  }

  /**
   * What one foreign generation's notifications took from our tables (pure). An object deleted and
   * added again within the generation is not damage (every hook call and reconcile flushes chains and
   * fills them again, replaces map elements, rewrites the inbound chains): per object the last
   * notification counts; a chain that lost rules is damaged only if no rule was added to it. Element
   * deletions in the inbound sets that are not added back count too (a hook's release does that as
   * well: the restore then puts back what the records say, which is nothing more for a released tap).
   * What a generation ADDS is not judged (a foreign addition to our table: the periodic resync).
   */
  static Damage damage(List<NftNotifications.Event> events) {
    Map<String, Boolean> last = new HashMap<>();
    Set<String> ruleDeleted = new LinkedHashSet<>();
    Set<String> ruleAdded = new java.util.HashSet<>();
    for (NftNotifications.Event e : events) {
      String t = e.family() + " " + e.table();
      switch (e.type()) {
        case TABLE -> last.put("table " + t, e.add());
        case CHAIN -> last.put("chain " + t + " " + e.name(), e.add());
        case SET -> last.put("set " + t + " " + e.name(), e.add());
        case RULE -> (e.add() ? ruleAdded : ruleDeleted).add(t + " " + e.name());
        case ELEMENT -> {
          for (String k : e.keys()) {
            last.put("element " + t + " " + e.name() + " " + k, e.add());
          }
        }
      }
    }
    String ours = NftNotifications.BRIDGE + " " + NftScript.TABLE;
    boolean table = false;
    boolean dispatch = false;
    boolean inbound = false;
    Set<String> taps = new TreeSet<>();
    for (Map.Entry<String, Boolean> x : last.entrySet()) {
      if (x.getValue()) {
        continue;
      }
      String[] f = x.getKey().split(" ", 5); // kind family table [name [key]]
      boolean mine = (f[1] + " " + f[2]).equals(ours);
      if (!mine) {
        inbound = true;
        continue;
      }
      switch (f[0]) {
        case "table" -> table = true;
        case "set" -> table |= f[3].equals(NftScript.MAP);
        case "chain" -> {
          if (f[3].equals(NftScript.BASE_CHAIN)) {
            dispatch = true;
          } else if (f[3].startsWith("port-")) {
            taps.add(f[3].substring("port-".length()));
          }
        }
        case "element" -> {
          if (f[3].equals(NftScript.MAP) && f.length > 4) {
            taps.add(f[4]);
          }
        }
        default -> { }
      }
    }
    for (String c : ruleDeleted) {
      if (ruleAdded.contains(c)) {
        continue;
      }
      String[] f = c.split(" ", 3);
      if (!(f[0] + " " + f[1]).equals(ours)) {
        inbound = true;
      } else if (f[2].equals(NftScript.BASE_CHAIN)) {
        dispatch = true;
      } else if (f[2].startsWith("port-")) {
        taps.add(f[2].substring("port-".length()));
      }
    }
    return new Damage(table, dispatch, taps, inbound, false);
  }

  private void monitorEnded(String why) {
    if (stopping) {
      return;
    }
    log.warn("agent: " + why + "; restarting it and restoring in case a change was missed");
    sleep(1000);
    if (!stopping) {
      startMonitor();
      fullReason = "nft monitor restarted";
      runner.markAll(false);
    }
  }

  // ------------------------------------------------------------------ the runner's pass

  private void sync(boolean all, boolean reread, Set<String> domains) {
    try {
      if (all) {
        full(reread);
      }
      if (nwfilter == null && domains.size() > 1) {
        several(domains);
      } else {
        for (String uuid : domains) {
          one(uuid);
        }
      }
    } catch (UncloudException e) {
      failed(e.getMessage());
      throw e;
    } catch (RuntimeException e) {
      failed(e.toString());
      throw e;
    }
  }

  /** A failed pass: one line per distinct failure (the retries while libvirtd is down say nothing new). */
  private void failed(String why) {
    if (!why.equals(lastError)) {
      log.warn("agent: " + why + " (retrying)");
    }
    lastError = why;
    writeStatus();
  }

  private boolean nftBackend() {
    return config.backend().equals("nft");
  }

  /** The whole host: read libvirt (or, for a lost ruleset, what is known), reconcile in one transaction. */
  private void full(boolean reread) {
    long t0 = System.nanoTime();
    String reason = fullReason;
    long seen = lossSeenMs;
    lossSeenMs = 0;
    fullReason = "periodic resync";
    if (nwfilter != null) {
      nwFull(t0, reason, seen, reread);
      return;
    }
    Damage damage;
    synchronized (this) {
      damage = pending;
      pending = Damage.NONE;
    }
    if (notifications != null && !reread && everRead && !damage.unknown()) {
      // the notifications said what was taken: put exactly that back, from what the agent knows
      if (!damage.none()) {
        try {
          restore(damage, reason, seen, t0);
        } catch (RuntimeException e) {
          synchronized (this) {
            pending = pending.merge(damage); // the retry puts back the same
          }
          fullReason = reason;
          lossSeenMs = lossSeenMs == 0 ? seen : lossSeenMs;
          throw e;
        }
      }
      return;
    }
    if (notifications == null && reason.equals(PART_DELETED) && !reread && everRead && intact()) {
      // every transaction (the agent's, each hook call's) flushes and refills our dispatch chain and
      // replaces map elements: the monitor reports those removals; nothing is missing, nothing to do
      return;
    }
    List<DomainView> views;
    if (reread || !everRead) {
      List<LibvirtSession.DomainXml> xmls = withSession(s -> s.domains(true, false));
      AddressSource src = source();
      views = xmls.stream().map(x -> DomainView.of(x, config, src)).toList();
      known.clear();
      views.forEach(v -> known.put(v.uuid(), v));
      applied.keySet().retainAll(known.keySet());
      everRead = true;
    } else {
      views = List.copyOf(known.values());
    }
    ReconcilePlan p = new Reconcile(DomainView.desired(views), nft, store, host::linkMac, config.vmTaps()).apply();
    long now = System.currentTimeMillis();
    for (DomainView v : views) {
      record(v, now);
    }
    lastResyncMs = now;
    if (!fight.fighting(now)) {
      // the warning about a tool that keeps deleting our table stays until it stopped for 10 s
      lastError = null;
    }
    // a removal the agent's own transaction caused (its flush of the dispatch chain) ends here with
    // nothing to change: not an action, no line
    if (!p.isEmpty() || reason.equals("connected")) {
      String since = seen > 0 ? ", " + (now - seen) + " ms after the loss was seen" : "";
      say(reason + ": " + (p.isEmpty() ? "nothing to change" : p.changes().size() + " changes in one nft transaction")
          + " (" + views.size() + " running domains) in " + ms(t0) + since);
    }
    writeStatus();
  }

  /**
   * Puts back what foreign transactions took ({@link #damage}), from the domains the agent knows, never
   * planning against the kernel: a lost table in two transactions (the fail-closed rule, then every
   * domain at once, {@link Rules#restoreAll}); lost chains, elements or dispatch rules by re-applying
   * the domains they belong to in one transaction; the inbound tables from the records
   * ({@link Rules#restoreInbound}).
   */
  private void restore(Damage d, String reason, long seen, long t0) {
    List<DomainView> views = List.copyOf(known.values());
    List<DomainPolicy> valid = new ArrayList<>();
    Map<String, DomainPolicy> byTap = new HashMap<>();
    Set<String> taps = new TreeSet<>();
    for (DomainView v : views) {
      if (v.policy() == null) {
        continue;
      }
      valid.add(v.policy());
      for (NicPolicy n : v.policy().nics()) {
        if (n.hasChain() && n.tap() != null) {
          byTap.put(n.tap(), v.policy());
          taps.add(n.tap());
        }
      }
    }
    StringBuilder what = new StringBuilder();
    if (d.table()) {
      boolean closed = rules.failClosed(taps);
      long closedMs = System.currentTimeMillis();
      Rules.Batch b = rules.restoreAll(valid, host::linkMac);
      if (b.notLocked() != null) {
        throw b.notLocked();
      }
      if (closed) {
        what.append("fail-closed rule back ").append(seen > 0 ? closedMs - seen : 0).append(" ms after the loss was seen (every VM tap dropped), then ");
      }
      what.append(valid.size()).append(valid.size() == 1 ? " domain's rules (" : " domains' rules (").append(taps.size())
          .append(taps.size() == 1 ? " NIC) in " : " NICs) in ")
          .append(b.together() ? "one nft transaction" : "one transaction each");
      if (!b.failures().isEmpty()) {
        log.warn("agent: " + b.failures().size() + " domains could not be restored: " + b.failures().get(0).error().getMessage());
      }
    } else {
      List<DomainPolicy> again = new ArrayList<>();
      for (String tap : d.taps()) {
        DomainPolicy p = byTap.get(tap);
        if (p != null && !again.contains(p)) {
          again.add(p);
        }
      }
      if (d.dispatch() && again.isEmpty() && !valid.isEmpty()) {
        again.add(valid.get(0)); // any domain's transaction rewrites the dispatch chain
      }
      if (!again.isEmpty()) {
        Rules.Batch b = rules.startAllLive(again, host::linkMac);
        if (b.notLocked() != null) {
          throw b.notLocked();
        }
        what.append(again.size()).append(again.size() == 1 ? " domain" : " domains").append(" re-applied (")
            .append(d.dispatch() ? "dispatch rule, " : "").append(d.taps().size()).append(" taps) in one nft transaction");
      }
    }
    if (d.inbound()) {
      int n = rules.restoreInbound();
      what.append(what.length() == 0 ? "" : "; ").append("inbound tables back from the records (").append(n).append(" elements)");
    }
    long now = System.currentTimeMillis();
    if (!fight.fighting(now)) {
      lastError = null;
    }
    if (what.length() > 0) {
      String since = seen > 0 ? ", " + (now - seen) + " ms after the loss was seen" : "";
      say(reason + ": " + what + " (" + views.size() + " running domains) in " + ms(t0) + since);
    }
    writeStatus();
  }

  /**
   * Whether our table still has the dispatch rule and, for every NIC of the known running domains
   * whose tap exists, its chain and the map element jumping to it: one {@code nft -j list table}, no
   * lock, no scratch load. What it cannot see (a changed rule inside a chain) the periodic resync does.
   */
  private boolean intact() {
    NftState st = Reconcile.observe(nft);
    NftState.Chain base = st.chain(NftScript.BASE_CHAIN);
    if (!st.exists() || base == null || base.rules().stream().noneMatch(r -> r.key().contains("\"vmap\""))) {
      return false;
    }
    for (DomainView v : known.values()) {
      if (v.policy() == null) {
        continue;
      }
      for (NicPolicy n : v.policy().nics()) {
        if (!n.hasChain() || host.linkMac(n.tap()) == null) {
          continue;
        }
        NftState.Chain c = st.chain(NftScript.chain(n.tap()));
        NftState.Element e = st.element(n.tap());
        if (c == null || e == null || !e.verdict().equals("jump " + c.name())) {
          return false;
        }
      }
    }
    return true;
  }

  /** One domain: re-read it; apply its policy, keep its rules when its metadata is invalid. */
  private void one(String uuid) {
    long t0 = System.nanoTime();
    String reason = reasons.getOrDefault(uuid, "event");
    reasons.remove(uuid);
    LibvirtSession.DomainXml x = withSession(s -> s.findLive(uuid));
    if (x == null || !x.active()) {
      // stopped or gone: its hook call ('stopped') removed its rules; the agent only forgets it
      known.remove(uuid);
      if (applied.remove(uuid) != null) {
        writeStatus();
      }
      return;
    }
    DomainView v = DomainView.of(x, config, source());
    known.put(uuid, v);
    String digest = digest(v);
    if (nwfilter != null) {
      nwOne(x, v, reason, t0);
      return;
    }
    if (v.policy() == null) {
      AgentStatus.Applied old = applied.get(uuid);
      if (old == null || !digest.equals(old.digest()) || old.error() == null) {
        log.error("agent: " + v.name() + ": " + reason + ": not applied, its rules stay as they were: " + v.error());
      }
      applied.put(uuid, new AgentStatus.Applied(v.name(), digest, old == null ? 0 : old.appliedMs(), v.error()));
      writeStatus();
      return;
    }
    rules.startLive(v.policy(), host::linkMac);
    applied.put(uuid, new AgentStatus.Applied(v.name(), digest, System.currentTimeMillis(), null));
    long nics = v.policy().nics().stream().filter(n -> n.hasChain()).count();
    say(v.name() + ": " + reason + ": applied (" + nics + " filtered NIC" + (nics == 1 ? "" : "s")
        + ", one nft transaction) in " + ms(t0));
    writeStatus();
  }

  // ------------------------------------------------------------------ backend = nwfilter

  /** nwfilter, the whole host: every running domain's live filterrefs and the guard (NwfilterKeeper). */
  private void nwFull(long t0, String reason, long seen, boolean reread) {
    boolean intact = everRead && nwfilter.intact(); // false: the next write replaces whatever is there
    if (!reread && intact) {
      return; // the monitor saw our own transaction's flushes; nothing is missing
    }
    // a lost table or libvirt's rules: read libvirt again (a NIC whose rules libvirt lost is held)
    List<LibvirtSession.DomainXml> xmls = withSession(s -> s.domains(true, false));
    AddressSource src = source();
    List<DomainView> views = xmls.stream().map(x -> DomainView.of(x, config, src)).toList();
    known.clear();
    views.forEach(v -> known.put(v.uuid(), v));
    applied.keySet().retainAll(known.keySet());
    everRead = true;
    NwfilterKeeper.Result r = nwfilter.apply(xmls, views, true, this::updateLive);
    long now = System.currentTimeMillis();
    for (DomainView v : views) {
      record(v, now);
    }
    lastResyncMs = now;
    if (!fight.fighting(now)) {
      lastError = null;
    }
    r.notes().forEach(n -> log.warn("agent: " + n));
    if (!r.wrote() && r.updated() == 0 && !reason.equals("connected")) {
      writeStatus();
      return;
    }
    String since = seen > 0 ? ", " + (now - seen) + " ms after the loss was seen" : "";
    say(reason + ": " + r.updated() + " live filterrefs updated, guard table bridge " + NwfilterGuard.TABLE + " in place, "
        + r.held() + " taps held (" + views.size() + " running domains) in " + ms(t0) + since);
    writeStatus();
  }

  /** nwfilter, one running domain: its live filterrefs, its taps held around each update. */
  private void nwOne(LibvirtSession.DomainXml x, DomainView v, String reason, long t0) {
    NwfilterKeeper.Result r = nwfilter.apply(List.of(x), List.of(v), false, this::updateLive);
    r.notes().forEach(n -> log.warn("agent: " + n));
    record(v, System.currentTimeMillis());
    if (v.policy() != null) {
      say(v.name() + ": " + reason + ": applied (" + r.updated() + " live filterref" + (r.updated() == 1 ? "" : "s")
          + " updated, each NIC held while libvirt rebuilt its rules) in " + ms(t0));
    }
    writeStatus();
  }

  private void updateLive(String uuid, String interfaceXml) {
    withSession(s -> {
      s.updateDevice(uuid, interfaceXml, LibvirtSession.AFFECT_LIVE);
      return null;
    });
  }

  /**
   * nft, many domains marked at once (a burst of metadata changes, several NICs hot-plugged): each
   * re-read, the valid ones applied in ONE transaction ({@link Rules#startAllLive}; if nft refuses it,
   * each alone), one line per domain as in {@link #one}.
   */
  private void several(Set<String> domains) {
    long t0 = System.nanoTime();
    List<DomainView> valid = new java.util.ArrayList<>();
    Map<String, String> why = new java.util.HashMap<>();
    for (String uuid : domains) {
      String reason = reasons.getOrDefault(uuid, "event");
      reasons.remove(uuid);
      LibvirtSession.DomainXml x = withSession(s -> s.findLive(uuid));
      if (x == null || !x.active()) {
        known.remove(uuid);
        applied.remove(uuid);
        continue;
      }
      DomainView v = DomainView.of(x, config, source());
      known.put(uuid, v);
      if (v.policy() == null) {
        record(v, System.currentTimeMillis());
        continue;
      }
      valid.add(v);
      why.put(uuid, reason);
    }
    if (valid.isEmpty()) {
      writeStatus();
      return;
    }
    Rules.Batch b = rules.startAllLive(valid.stream().map(DomainView::policy).toList(), host::linkMac);
    if (b.notLocked() != null) {
      throw b.notLocked();
    }
    long now = System.currentTimeMillis();
    String how = b.together() ? "one nft transaction for " + valid.size() + " domains"
        : "one nft transaction each (together refused: " + b.combinedFailed().getMessage() + ")";
    for (DomainView v : valid) {
      if (b.applied().stream().noneMatch(p -> p.uuid().equals(v.uuid()))) {
        continue;
      }
      applied.put(v.uuid(), new AgentStatus.Applied(v.name(), digest(v), now, null));
      long nics = v.policy().nics().stream().filter(n -> n.hasChain()).count();
      say(v.name() + ": " + why.get(v.uuid()) + ": applied (" + nics + " filtered NIC" + (nics == 1 ? "" : "s") + ", "
          + how + ") in " + ms(t0));
    }
    writeStatus();
    if (!b.failures().isEmpty()) {
      throw b.failures().get(0).error();
    }
  }

  // ------------------------------------------------------------------ source = etcd

  /** Where the passes read addresses: the watch's copy of the etcd keys, else the domain XML. */
  private AddressSource source() {
    return etcdWatch != null ? etcdWatch.source() : AddressSource.of(config);
  }

  /** The watch saw keys change: mark the running domains they belong to (a key of no domain here: ignored). */
  private void etcdChanged(Set<String> vmids, boolean all, long revision) {
    if (all) {
      fullReason = "etcd read";
      runner.markAll(true);
      return;
    }
    for (DomainView v : known.values()) {
      String id = config.etcd().vmidByName() ? v.name() : v.uuid().toLowerCase(java.util.Locale.ROOT);
      if (vmids.contains(id)) {
        reasons.put(v.uuid(), "etcd key changed (revision " + revision + ")");
        runner.markDomain(v.uuid());
      }
    }
  }

  private void record(DomainView v, long now) {
    String digest = digest(v);
    AgentStatus.Applied old = applied.get(v.uuid());
    if (v.policy() != null) {
      applied.put(v.uuid(), new AgentStatus.Applied(v.name(), digest, now, null));
    } else {
      if (old == null || !digest.equals(old.digest()) || old.error() == null) {
        log.error("agent: " + v.name() + ": not applied, its rules stay as they were: " + v.error());
      }
      applied.put(v.uuid(), new AgentStatus.Applied(v.name(), digest, old == null ? 0 : old.appliedMs(), v.error()));
    }
  }

  /**
   * What status compares: the digest of the normal form of the domain's live metadata and of the NIC
   * policies derived from it or, with {@code source = etcd}, from its key (so a key change the agent
   * has not applied yet shows as pending).
   */
  public static String digest(DomainView v) {
    return AgentStatus.digest(DomainView.normal(v.liveMetadata())
        + (v.policy() == null ? "" : "\n" + v.policy().nics()));
  }

  private interface Read<T> {
    T read(LibvirtSession s);
  }

  private <T> T withSession(Read<T> r) {
    connLock.readLock().lock();
    try {
      if (events == null) {
        throw new UncloudException(ExitCodes.APPLY_FAILED, "not connected to libvirt at " + uri);
      }
      return r.read(events.session());
    } finally {
      connLock.readLock().unlock();
    }
  }

  // ------------------------------------------------------------------ output

  private void say(String line) {
    err.println("uncloud-hook agent: " + line);
    err.flush();
    log.info("agent: " + line);
  }

  private static String ms(long t0) {
    return (System.nanoTime() - t0) / 1_000_000 + " ms";
  }

  private synchronized void writeStatus() {
    boolean connected;
    connLock.readLock().lock();
    try {
      connected = events != null;
    } finally {
      connLock.readLock().unlock();
    }
    AgentStatus s = new AgentStatus(ProcessHandle.current().pid(), uri, connected && !stopping, startedMs, connectedMs,
        lastResyncMs, lastError, System.currentTimeMillis(), new TreeMap<>(applied), etcdWatch == null ? null : etcdWatch.state());
    try {
      s.write(config.stateDir());
      statusWriteFailed = false;
    } catch (IOException e) {
      if (!statusWriteFailed) {
        log.warn("agent: cannot write " + config.stateDir() + "/" + AgentStatus.FILE + ": " + e.getMessage());
        statusWriteFailed = true;
      }
    }
  }

  private void shutdown() {
    stopping = true;
    runner.stop();
    if (etcdWatch != null) {
      etcdWatch.stop();
    }
    if (monitor != null) {
      monitor.close();
    }
    if (notifications != null) {
      notifications.close();
    }
    say("stopping");
    writeStatus();
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
