package ch.ungleich.uncloud.hook.agent;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.config.EtcdSettings;
import ch.ungleich.uncloud.hook.source.AddressSource;
import ch.ungleich.uncloud.hook.source.EtcdClient;
import ch.ungleich.uncloud.hook.source.WatchMessage;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.HttpURLConnection;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.function.Consumer;

/**
 * {@code source = etcd} in the agent: one full read of {@code etcd_prefix} (every key and the store's
 * revision), then etcd's watch of the prefix from the next revision, so the agent's copy of the keys
 * is always the store at one revision. A change tells the agent which vmids changed (it marks those
 * of its running domains; the rest are ignored) and the agent applies them through the engine like
 * any other trigger: this class plans nothing.
 *
 * <ul>
 *   <li>The stream breaks (member stopped, connection lost): the watch is opened again from the
 *       revision after the last one seen, on the first endpoint that answers a linearizable read
 *       (a member cut off from its quorum would accept a watch and then stay silent), so nothing is
 *       missed across reconnects. No endpoint answers: retried with backoff (0.25 s doubling to 5 s);
 *       the copy, and so the rules, stay as they were.
 *   <li>etcd compacted the revision to resume from: a full read again; the keys that differ from the
 *       copy are the changes.
 *   <li>A quiet stream is reopened after {@link #IDLE_MS} (the same check of the member, no line).
 * </ul>
 *
 * One line per change of state (reading, watching from revision N, retrying, compacted), never one per
 * retry.
 */
final class EtcdWatch {
  /** A stream with no line for this long is reopened from the same revision. */
  static final int IDLE_MS = 30_000;

  /** What the agent is told. */
  interface Listener {
    /**
     * @param vmids the vmids (key minus prefix) whose value changed
     * @param all the first full read: every domain may have changed (its rules were kept so far)
     * @param revision the revision of the change
     */
    void changed(Set<String> vmids, boolean all, long revision);
  }

  private final Config config;
  private final EtcdSettings settings;
  private final EtcdClient client;
  private final Listener listener;
  private final Consumer<String> say;
  private final Consumer<String> warn;
  private final Runnable stateChanged;

  /** The prefix's keys at {@link #revision}; null until the first full read. */
  private volatile Map<String, String> values;
  private volatile long revision;
  private volatile String state = "starting";
  private volatile String endpoint;
  private volatile long retryingSinceMs;
  private volatile boolean stopped;
  private volatile HttpURLConnection open;
  private Thread thread;
  private final java.util.concurrent.CountDownLatch firstRead = new java.util.concurrent.CountDownLatch(1);

  EtcdWatch(Config config, Listener listener, Consumer<String> say, Consumer<String> warn, Runnable stateChanged) {
    this.config = config;
    this.settings = config.etcd();
    this.client = new EtcdClient(settings);
    this.listener = listener;
    this.say = say;
    this.warn = warn;
    this.stateChanged = stateChanged;
  }

  void start() {
    thread = new Thread(this::loop, "agent-etcd-watch");
    thread.setDaemon(true);
    thread.start();
  }

  /** Waits up to {@code ms} for the first full read (so the first pass plans from etcd, not from an error). */
  void awaitFirstRead(long ms) {
    try {
      firstRead.await(ms, java.util.concurrent.TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /**
   * Ends the watch without waiting for it: {@code disconnect()} blocks until the watch thread's read
   * returns (it closes the stream that read holds), up to {@link #IDLE_MS} on a quiet stream, which
   * held every agent stop for ~30 s. It runs on a daemon thread; the process exit closes the socket.
   */
  void stop() {
    stopped = true;
    HttpURLConnection c = open;
    if (c != null) {
      Thread t = new Thread(c::disconnect, "agent-etcd-disconnect");
      t.setDaemon(true);
      t.start();
    }
    if (thread != null) {
      thread.interrupt();
    }
  }

  /**
   * The source the agent's passes read from: this copy of the keys. Before the first full read every
   * domain's policy is an error (its rules stay as they are).
   */
  AddressSource source() {
    return AddressSource.of(config, key -> {
      Map<String, String> v = values;
      if (v == null) {
        throw new UncloudException(ExitCodes.SOURCE_UNAVAILABLE, "etcd " + settings.prefix() + " not read yet (" + state + ")");
      }
      return v.get(key);
    });
  }

  /** For agent.json, status and doctor: "watching PREFIX from revision N on ENDPOINT" or "retrying ...". */
  String state() {
    String s = state;
    return s.startsWith("watching ") ? "watching " + settings.prefix() + " on " + endpoint + ", at revision " + revision : s;
  }

  long revision() {
    return revision;
  }

  // ------------------------------------------------------------------ the thread

  private void loop() {
    long backoffMs = 250;
    while (!stopped) {
      try {
        if (values == null) {
          read(true);
        }
        watchOnce();
        backoffMs = 250; // the stream ended after it worked: reopen at once
      } catch (Compacted e) {
        say.accept("etcd: revision " + (revision + 1) + " was compacted (etcd keeps from " + e.compactRevision
            + "): full re-read of " + settings.prefix());
        try {
          read(false);
          backoffMs = 250;
        } catch (UncloudException f) {
          retrying(f.getMessage());
          backoffMs = sleep(backoffMs);
        }
      } catch (Broken e) {
        // the stream of a working watch ended (its member stopped, say): reopen at once on the next
        // endpoint; a line only when that fails too, or when the watch moves to another endpoint
        if (stopped) {
          return;
        }
      } catch (UncloudException | IOException e) {
        if (stopped) {
          return;
        }
        retrying(e.getMessage());
        backoffMs = sleep(backoffMs);
      }
    }
  }

  /** The whole prefix; every key that differs from the copy is a change ({@code first}: all). */
  private void read(boolean first) {
    EtcdClient.Range r = client.snapshot(settings.prefix());
    Map<String, String> old = values == null ? Map.of() : values;
    Set<String> changed = new LinkedHashSet<>();
    for (Map.Entry<String, String> e : r.kvs().entrySet()) {
      if (!e.getValue().equals(old.get(e.getKey()))) {
        changed.add(vmid(e.getKey()));
      }
    }
    for (String k : old.keySet()) {
      if (!r.kvs().containsKey(k)) {
        changed.add(vmid(k));
      }
    }
    boolean wasNull = values == null;
    values = Map.copyOf(r.kvs());
    revision = r.revision();
    say.accept("etcd: read " + r.kvs().size() + " key" + (r.kvs().size() == 1 ? "" : "s") + " under " + settings.prefix()
        + " at revision " + r.revision() + (wasNull ? "" : " (" + changed.size() + " changed)"));
    if (wasNull || !changed.isEmpty()) {
      listener.changed(changed, wasNull, r.revision());
    }
    firstRead.countDown();
  }

  /** Opens the watch from {@code revision + 1} on the first endpoint in quorum and follows it until it ends. */
  private void watchOnce() throws IOException {
    HttpURLConnection c = null;
    List<String> errors = new ArrayList<>();
    String at = null;
    for (String e : order()) {
      try {
        client.quorum(e, settings.prefix());
        c = client.watch(e, settings.prefix(), revision + 1, IDLE_MS);
        at = e;
        break;
      } catch (IOException | GeneralSecurityException x) {
        errors.add(e + ": " + EtcdClient.why(x));
      }
    }
    if (c == null) {
      throw new UncloudException(ExitCodes.SOURCE_UNAVAILABLE, "etcd watch of " + settings.prefix() + ": no endpoint answered ("
          + String.join("; ", errors) + ")");
    }
    open = c;
    long createdNs = 0;
    try (BufferedReader in = new BufferedReader(new InputStreamReader(c.getInputStream(), StandardCharsets.UTF_8))) {
      for (String line = in.readLine(); line != null && !stopped; line = in.readLine()) {
        if (line.isBlank()) {
          continue;
        }
        WatchMessage m;
        try {
          m = WatchMessage.parse(line);
        } catch (IllegalArgumentException x) {
          throw new IOException("etcd watch on " + at + ": unreadable line: " + x.getMessage());
        }
        if (m.compactRevision() > 0) {
          throw new Compacted(m.compactRevision());
        }
        if (m.error() != null || m.canceled()) {
          throw new IOException("etcd watch on " + at + " ended: " + (m.error() == null ? "canceled" : m.error()));
        }
        if (m.created()) {
          createdNs = System.nanoTime();
          watching(at);
        }
        apply(m);
      }
      if (!stopped) {
        throw new IOException("etcd watch on " + at + ": the stream ended");
      }
    } catch (SocketTimeoutException quiet) {
      // no change for IDLE_MS: reopen from the same revision (checks the member again)
    } catch (IOException e) {
      if (createdNs != 0 && System.nanoTime() - createdNs > 1_000_000_000L) {
        throw new Broken(); // a watch that ends within a second of its start is an error (backoff)
      }
      throw e;
    } finally {
      open = null;
      c.disconnect();
    }
  }

  /** Applies a message's events that are newer than the copy; tells the agent the vmids that changed. */
  private void apply(WatchMessage m) {
    if (m.events().isEmpty()) {
      return;
    }
    Map<String, String> next = new HashMap<>(values);
    Set<String> changed = new LinkedHashSet<>();
    long rev = revision;
    for (WatchMessage.Event e : m.events()) {
      if (e.modRevision() <= revision) {
        continue; // already in the copy (the full read saw it)
      }
      rev = Math.max(rev, e.modRevision());
      String before = e.value() == null ? next.remove(e.key()) : next.put(e.key(), e.value());
      if (!Objects.equals(before, e.value())) {
        changed.add(vmid(e.key()));
      }
    }
    values = Map.copyOf(next);
    revision = Math.max(rev, m.revision());
    if (!changed.isEmpty()) {
      listener.changed(changed, false, revision);
    }
  }

  private String vmid(String key) {
    return key.startsWith(settings.prefix()) ? key.substring(settings.prefix().length()) : key;
  }

  /** The endpoints, the one that worked last first. */
  private List<String> order() {
    List<String> out = new ArrayList<>(settings.endpoints());
    if (endpoint != null && out.remove(endpoint)) {
      out.add(0, endpoint);
    }
    return out;
  }

  private void watching(String at) {
    String was = state;
    endpoint = at;
    retryingSinceMs = 0;
    state = "watching " + settings.prefix() + " on " + at + " from revision " + (revision + 1);
    if (!was.startsWith("watching " + settings.prefix() + " on " + at + " ")) {
      say.accept("etcd: " + state);
      stateChanged.run();
    }
  }

  private void retrying(String why) {
    boolean same = state.startsWith("retrying"); // one line when the outage starts, none per retry
    boolean sameWhy = same && state.endsWith(": " + why);
    if (retryingSinceMs == 0) {
      retryingSinceMs = System.currentTimeMillis();
    }
    state = "retrying since " + java.time.Instant.ofEpochMilli(retryingSinceMs) + " (the rules stay as they are"
        + (values == null ? ", nothing read yet" : ", keys as of revision " + revision) + "): " + why;
    if (!same) {
      warn.accept("agent: etcd: " + why + "; keeping the rules, retrying");
    }
    if (!sameWhy) {
      stateChanged.run();
    }
  }

  private long sleep(long backoffMs) {
    try {
      Thread.sleep(backoffMs);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      stopped = true;
    }
    return Math.min(backoffMs * 2, 5_000);
  }

  /** A watch that was established ended: reopened at once. */
  private static final class Broken extends RuntimeException {
    Broken() {
      super(null, null, false, false);
    }
  }

  /** The revision to resume from is gone. */
  private static final class Compacted extends RuntimeException {
    final long compactRevision;

    Compacted(long compactRevision) {
      super(null, null, false, false);
      this.compactRevision = compactRevision;
    }
  }
}
