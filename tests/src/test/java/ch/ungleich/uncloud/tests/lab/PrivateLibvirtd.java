package ch.ungleich.uncloud.tests.lab;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A libvirtd of its own inside a lab network namespace, as shared/labs/two-hosts.sh runs them: a new
 * mount namespace in which its own directories are bind-mounted over {@code /etc/libvirt}, {@code /run},
 * {@code /var/lib/libvirt}, {@code /var/cache/libvirt} and {@code /var/log/libvirt}, so several run at
 * once and none touches the machine's libvirt. qemu runs as root without security driver, cgroups or
 * virtlogd. Its nwfilter driver writes its ebtables rules (ebtables-nft: {@code table bridge nat}) in
 * the lab namespace. {@link #close()} destroys the domains, stops the daemon by its PID, kills qemu
 * processes recorded in its own run directory and removes the directory.
 */
public final class PrivateLibvirtd implements AutoCloseable {
  private final String netns;
  private final Path dir;
  private Process daemon;

  private PrivateLibvirtd(String netns, Path dir) {
    this.netns = netns;
    this.dir = dir;
  }

  /**
   * Prepares the directories and starts the daemon.
   *
   * @param netns the lab namespace it runs in (its taps and rules appear there)
   * @param hook the qemu hook script to install as {@code /etc/libvirt/hooks/qemu} (libvirtd only
   *     notices hooks at start), or null for none
   */
  public static PrivateLibvirtd start(String netns, String tmpPrefix, String hook) {
    Path dir;
    try {
      dir = Files.createTempDirectory(tmpPrefix + "-libvirtd-");
      for (String d : List.of("etc/hooks", "etc/nwfilter", "run", "lib", "cache", "log")) {
        Files.createDirectories(dir.resolve(d));
      }
      Files.writeString(dir.resolve("etc/libvirtd.conf"), """
          unix_sock_group = "root"
          auth_unix_ro = "none"
          auth_unix_rw = "none"
          log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
          """);
      Files.writeString(dir.resolve("etc/qemu.conf"), """
          security_driver = "none"
          cgroup_controllers = [ ]
          namespaces = [ ]
          stdio_handler = "file"
          user = "root"
          group = "root"
          dynamic_ownership = 0
          remember_owner = 0
          """);
      if (hook != null) {
        Path h = dir.resolve("etc/hooks/qemu");
        Files.writeString(h, hook);
        Files.setPosixFilePermissions(h, PosixFilePermissions.fromString("rwxr-xr-x"));
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    PrivateLibvirtd d = new PrivateLibvirtd(netns, dir);
    try {
      d.startDaemon();
      return d;
    } catch (RuntimeException | Error e) {
      d.close();
      throw e;
    }
  }

  public Path dir() {
    return dir;
  }

  /** The client URI: the daemon's socket under its own /run. */
  public String uri() {
    return "qemu+unix:///system?socket=" + dir.resolve("run/libvirt/libvirt-sock");
  }

  /** {@code virsh -q -c URI ARGS}; never throws on a non-zero exit. */
  public Proc.Result virsh(String... args) {
    List<String> cmd = new ArrayList<>(List.of("virsh", "-q", "-c", uri()));
    cmd.addAll(List.of(args));
    return Proc.run(Duration.ofSeconds(120), null, cmd);
  }

  /** Stops and starts the daemon; running qemu processes stay (libvirtd reconnects to them). */
  public void restart() {
    stopDaemon();
    startDaemon();
  }

  /** The daemon's log (for failure messages). */
  public String log() {
    try {
      Path l = dir.resolve("log/libvirtd.log");
      return Files.exists(l) ? Files.readString(l) : "(no libvirtd.log)";
    } catch (IOException e) {
      return "(cannot read libvirtd.log: " + e + ")";
    }
  }

  private void startDaemon() {
    String script = String.join("\n",
        "set -e",
        "mount -n --bind " + dir.resolve("etc") + " /etc/libvirt",
        "mount -n --bind " + dir.resolve("run") + " /run",
        "mkdir -p /run/libvirt",
        "mount -n --bind " + dir.resolve("lib") + " /var/lib/libvirt",
        "mount -n --bind " + dir.resolve("cache") + " /var/cache/libvirt",
        "mount -n --bind " + dir.resolve("log") + " /var/log/libvirt",
        "cd /",
        "exec /usr/sbin/libvirtd");
    ProcessBuilder pb = new ProcessBuilder("ip", "netns", "exec", netns, "unshare", "--mount", "--uts",
        "--propagation", "private", "sh", "-c", script);
    File out = dir.resolve("libvirtd.stdout").toFile();
    pb.redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(out));
    try {
      daemon = pb.start(); // ip, unshare and sh exec: this is libvirtd's own PID
    } catch (IOException e) {
      throw new UncheckedIOException("cannot start libvirtd", e);
    }
    long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
    while (true) {
      if (!daemon.isAlive()) {
        throw new IllegalStateException("libvirtd exited with " + daemon.exitValue() + "\n" + log());
      }
      if (Files.exists(dir.resolve("run/libvirt/libvirt-sock")) && virsh("version").exit() == 0) {
        return;
      }
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("libvirtd did not come up in 60 s\n" + log());
      }
      sleep(200);
    }
  }

  private void stopDaemon() {
    if (daemon == null) {
      return;
    }
    daemon.destroy(); // SIGTERM to libvirtd itself
    try {
      if (!daemon.waitFor(20, TimeUnit.SECONDS)) {
        daemon.destroyForcibly();
        daemon.waitFor(5, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      daemon.destroyForcibly();
    }
    daemon = null;
  }

  @Override
  public void close() {
    if (daemon != null && daemon.isAlive()) {
      Proc.Result r = virsh("list", "--name");
      if (r.exit() == 0) {
        for (String name : r.out().strip().split("\n")) {
          if (!name.isBlank()) {
            virsh("destroy", name.strip());
          }
        }
      }
    }
    stopDaemon();
    // qemu outlives libvirtd: kill what libvirt recorded in OUR run dir, checking it is qemu
    File[] pids = dir.resolve("run/libvirt/qemu").toFile().listFiles((d, n) -> n.endsWith(".pid"));
    if (pids != null) {
      for (File f : pids) {
        try {
          long pid = Long.parseLong(Files.readString(f.toPath()).strip());
          String cmdline = Files.readString(Path.of("/proc/" + pid + "/cmdline"));
          if (cmdline.contains("qemu-system")) {
            ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
          }
        } catch (IOException | RuntimeException ignored) {
          // gone already
        }
      }
    }
    try (Stream<Path> s = Files.walk(dir)) {
      s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException ignored) {
      // best effort: a temp dir
    }
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }
}
