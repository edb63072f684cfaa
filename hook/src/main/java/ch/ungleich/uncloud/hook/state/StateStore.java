package ch.ungleich.uncloud.hook.state;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Ownership records under {@code state_dir} (tmpfs {@code /run}: gone at reboot, like the rules):
 * {@code taps/<tap>} holds the {@link Owner} of that tap's chain, {@code domains/<uuid>} the taps a
 * domain owns. At {@code stopped}/{@code release} libvirt's XML no longer names the taps, so this is
 * how a domain's rules are found by UUID in O(its NICs), never by listing the whole ruleset.
 *
 * <p>Every read-plan-apply-write runs under one host-wide lock ({@code state_dir/lock}); calls for
 * different domains wait for each other for at most {@code lock_timeout} seconds, then fail clearly.
 */
public final class StateStore {
  private final Path dir;
  private final int lockTimeoutSeconds;

  public StateStore(String dir, int lockTimeoutSeconds) {
    this.dir = Path.of(dir);
    this.lockTimeoutSeconds = lockTimeoutSeconds;
  }

  public Path dir() {
    return dir;
  }

  /** Holds the host lock while it is open. */
  public interface Lock extends AutoCloseable {
    @Override
    void close();
  }

  /** Takes the host lock, waiting at most lock_timeout; throws {@code LOCKED} after that. */
  public Lock lock() {
    try {
      Files.createDirectories(dir);
      FileChannel ch =
          FileChannel.open(dir.resolve("lock"), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
      long deadline = System.nanoTime() + lockTimeoutSeconds * 1_000_000_000L;
      while (true) {
        FileLock l;
        try {
          l = ch.tryLock();
        } catch (OverlappingFileLockException held) {
          l = null; // held by another thread of this JVM (the CLI, tests): wait like for a process
        }
        if (l != null) {
          FileLock held = l;
          return () -> {
            try {
              held.release();
              ch.close();
            } catch (IOException ignored) {
              // closing the channel releases the lock in any case
            }
          };
        }
        if (System.nanoTime() > deadline) {
          ch.close();
          throw new UncloudException(
              ExitCodes.LOCKED,
              "another uncloud-hook call held " + dir.resolve("lock") + " for more than " + lockTimeoutSeconds
                  + " s");
        }
        Thread.sleep(5);
      }
    } catch (IOException e) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, "cannot lock " + dir.resolve("lock") + ": " + e.getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new UncloudException(ExitCodes.LOCKED, "interrupted while waiting for " + dir.resolve("lock"));
    }
  }

  /** The owner of a tap's rules, or null. */
  public Owner owner(String tap) {
    String s = read(dir.resolve("taps").resolve(tap));
    return s == null ? null : Owner.decode(s);
  }

  /** The taps a domain owns; empty if none or unknown. */
  public List<String> taps(String uuid) {
    String s = read(dir.resolve("domains").resolve(uuid));
    List<String> out = new ArrayList<>();
    if (s != null) {
      for (String l : s.split("\n")) {
        if (!l.isBlank()) {
          out.add(l.strip());
        }
      }
    }
    return out;
  }

  /** Every domain UUID with records (for reconcile and doctor). */
  public List<String> domains() {
    return list("domains");
  }

  /** Every tap with an owner record. */
  public List<String> allTaps() {
    return list("taps");
  }

  /** Records what a plan made true; call only after its script was applied. */
  public void commit(String uuid, Plan plan) {
    for (String tap : plan.release()) {
      delete(dir.resolve("taps").resolve(tap));
    }
    for (Map.Entry<String, Owner> e : plan.claim().entrySet()) {
      write(dir.resolve("taps").resolve(e.getKey()), e.getValue().encode());
    }
    Path d = dir.resolve("domains").resolve(uuid);
    if (plan.domainTaps() == null || plan.domainTaps().isEmpty()) {
      delete(d);
    } else {
      write(d, String.join("\n", plan.domainTaps()) + "\n");
    }
  }

  /**
   * The delivery-filter and security-group set elements installed for a tap (issue 17), as {@link
   * ch.ungleich.uncloud.hook.nft.InboundScript#elements} rendered them; empty if none. They are what a
   * later event removes, so that it never has to list the sets (O(1) in the number of ports).
   */
  public List<String> inbound(String tap) {
    String s = read(dir.resolve("inbound").resolve(tap));
    List<String> out = new ArrayList<>();
    if (s != null) {
      for (String l : s.split("\n")) {
        if (!l.isBlank()) {
          out.add(l.strip());
        }
      }
    }
    return out;
  }

  /** Records each tap's elements (an empty list removes the record); call only after the script was applied. */
  public void commitInbound(Map<String, List<String>> elements) {
    for (Map.Entry<String, List<String>> e : elements.entrySet()) {
      Path p = dir.resolve("inbound").resolve(e.getKey());
      if (e.getValue().isEmpty()) {
        delete(p);
      } else {
        write(p, String.join("\n", e.getValue()) + "\n");
      }
    }
  }

  /** Every tap with an inbound record. */
  public List<String> inboundTaps() {
    return list("inbound");
  }

  /** Every ownership record: tap to owner (records that cannot be read as one are skipped). */
  public Map<String, Owner> records() {
    Map<String, Owner> out = new TreeMap<>();
    for (String tap : allTaps()) {
      Owner o = owner(tap);
      if (o != null) {
        out.put(tap, o);
      }
    }
    return out;
  }

  /**
   * Makes the records exactly {@code owners} ({@code reconcile}): writes each tap's owner, rewrites
   * every domain's tap list from them, and removes every other tap and domain record. Call only after
   * the matching nft transaction has been applied, under the lock.
   */
  public void replaceAll(Map<String, Owner> owners) {
    Map<String, List<String>> byDomain = new TreeMap<>();
    for (Map.Entry<String, Owner> e : new TreeMap<>(owners).entrySet()) {
      if (!e.getValue().equals(owner(e.getKey()))) {
        write(dir.resolve("taps").resolve(e.getKey()), e.getValue().encode());
      }
      byDomain.computeIfAbsent(e.getValue().uuid(), k -> new ArrayList<>()).add(e.getKey());
    }
    for (String tap : allTaps()) {
      if (!owners.containsKey(tap)) {
        delete(dir.resolve("taps").resolve(tap));
      }
    }
    for (Map.Entry<String, List<String>> e : byDomain.entrySet()) {
      String content = String.join("\n", e.getValue()) + "\n";
      if (!content.equals(read(dir.resolve("domains").resolve(e.getKey())))) {
        write(dir.resolve("domains").resolve(e.getKey()), content);
      }
    }
    for (String uuid : domains()) {
      if (!byDomain.containsKey(uuid)) {
        delete(dir.resolve("domains").resolve(uuid));
      }
    }
  }

  /** The last reconcile's fingerprint ({@code state_dir/reconciled}), null when there is none. */
  public String fingerprint() {
    return read(dir.resolve("reconciled"));
  }

  /** Replaces the fingerprint; null removes it. Under the lock. */
  public void fingerprint(String text) {
    if (text == null) {
      delete(dir.resolve("reconciled"));
    } else {
      write(dir.resolve("reconciled"), text);
    }
  }

  private List<String> list(String sub) {
    try (var s = Files.list(dir.resolve(sub))) {
      return s.map(p -> p.getFileName().toString()).filter(n -> !n.startsWith(".")).sorted().toList();
    } catch (NoSuchFileException e) {
      return List.of();
    } catch (IOException e) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, "cannot list " + dir.resolve(sub) + ": " + e.getMessage());
    }
  }

  private static String read(Path p) {
    try {
      return Files.readString(p, StandardCharsets.UTF_8);
    } catch (NoSuchFileException e) {
      return null;
    } catch (IOException e) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, "cannot read " + p + ": " + e.getMessage());
    }
  }

  /** Write to a temporary file, then rename: a reader never sees half a record. */
  private static void write(Path p, String content) {
    try {
      Files.createDirectories(p.getParent());
      Path tmp = p.resolveSibling("." + p.getFileName() + ".tmp");
      Files.writeString(tmp, content, StandardCharsets.UTF_8);
      try {
        Files.move(tmp, p, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      } catch (AtomicMoveNotSupportedException e) {
        Files.move(tmp, p, StandardCopyOption.REPLACE_EXISTING);
      }
    } catch (IOException e) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, "cannot write " + p + ": " + e.getMessage());
    }
  }

  private static void delete(Path p) {
    try {
      Files.deleteIfExists(p);
    } catch (IOException e) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, "cannot remove " + p + ": " + e.getMessage());
    }
  }
}
