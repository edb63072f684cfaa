package ch.ungleich.uncloud.hook.host;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * The CLI's edge to the local Linux host: network interfaces (sysfs of the caller's network
 * namespace), sysctls, files, processes. Every read that fails answers "absent" (null, false, empty)
 * rather than throwing: these are facts for checks, and a missing fact is a finding.
 */
public final class LinuxHost {
  /**
   * The kernel's USER_HZ: the unit of process start times in /proc/PID/stat. It is 100 on every Linux
   * architecture's user ABI (the kernel converts from its internal HZ).
   */
  static final long USER_HZ = 100;

  private final Path root;

  /** The real host. */
  public LinuxHost() {
    this(Path.of("/"));
  }

  /** A host whose /sys and /proc live under {@code root} (tests). */
  public LinuxHost(Path root) {
    this.root = root;
  }

  /** The MAC of a network interface in this namespace, lower case; null when there is none. */
  public String linkMac(String ifname) {
    if (ifname == null || ifname.contains("/") || ifname.startsWith(".")) {
      return null;
    }
    String s = read(root.resolve("sys/class/net").resolve(ifname).resolve("address"));
    return s == null ? null : s.strip().toLowerCase(java.util.Locale.ROOT);
  }

  /** The network interfaces of this namespace ({@code /sys/class/net}), sorted; empty when it cannot be read. */
  public List<String> links() {
    try (Stream<Path> s = Files.list(root.resolve("sys/class/net"))) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    } catch (IOException | RuntimeException e) {
      return List.of();
    }
  }

  /** Tap devices (tun/tap) enslaved to a bridge: name to the bridge's name. */
  public java.util.Map<String, String> bridgeTaps() {
    java.util.Map<String, String> out = new java.util.TreeMap<>();
    Path net = root.resolve("sys/class/net");
    for (String l : links()) {
      Path d = net.resolve(l);
      try {
        if (Files.exists(d.resolve("tun_flags")) && Files.exists(d.resolve("brport"))) {
          out.put(l, Files.readSymbolicLink(d.resolve("master")).getFileName().toString());
        }
      } catch (IOException | RuntimeException e) {
        // gone meanwhile, or no master link: not a bridge port now
      }
    }
    return out;
  }

  /** A sysctl like {@code net.bridge.bridge-nf-call-iptables}; null when it does not exist. */
  public String sysctl(String name) {
    String s = read(root.resolve("proc/sys").resolve(name.replace('.', '/')));
    return s == null ? null : s.strip();
  }

  /**
   * What is known about a file.
   *
   * @param content the first 64 KiB of a regular file, else null
   * @param mtimeMillis last change of the content, 0 when absent
   * @param ctimeMillis last change of content or mode (chmod), 0 when absent
   */
  public record FileInfo(
      String path, boolean exists, boolean regular, boolean directory, boolean executable, long mtimeMillis,
      long ctimeMillis, String content) {}

  public FileInfo file(String path) {
    Path p = Path.of(path);
    try {
      PosixFileAttributes a = Files.readAttributes(p, PosixFileAttributes.class);
      String content = null;
      if (a.isRegularFile() && Files.isReadable(p)) {
        try (InputStream in = Files.newInputStream(p)) {
          content = new String(in.readNBytes(65536), StandardCharsets.UTF_8);
        }
      }
      long ctime = ((java.nio.file.attribute.FileTime) Files.getAttribute(p, "unix:ctime")).toMillis();
      return new FileInfo(
          path, true, a.isRegularFile(), a.isDirectory(), Files.isExecutable(p), a.lastModifiedTime().toMillis(),
          ctime, content);
    } catch (IOException | RuntimeException e) {
      return new FileInfo(path, Files.exists(p, LinkOption.NOFOLLOW_LINKS), false, false, false, 0, 0, null);
    }
  }

  /** Names in a directory, sorted; empty when it does not exist. */
  public List<String> list(String dir) {
    try (Stream<Path> s = Files.list(Path.of(dir))) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    } catch (IOException | RuntimeException e) {
      return List.of();
    }
  }

  /** A whole (small) file; null when it cannot be read. */
  public String readFile(String path) {
    return read(Path.of(path));
  }

  /** The last {@code bytes} of a file; null when it cannot be read. */
  public String tail(String path, int bytes) {
    try (var ch = java.nio.channels.FileChannel.open(Path.of(path))) {
      long size = ch.size();
      long from = Math.max(0, size - bytes);
      java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate((int) (size - from));
      ch.read(b, from);
      return new String(b.array(), 0, b.position(), StandardCharsets.UTF_8);
    } catch (IOException | RuntimeException e) {
      return null;
    }
  }

  /** The command name of a process ({@code /proc/PID/comm}); null when there is no such process. */
  public String processName(long pid) {
    String s = read(root.resolve("proc").resolve(Long.toString(pid)).resolve("comm"));
    return s == null ? null : s.strip();
  }

  /**
   * When a process started, in epoch milliseconds: field 22 of {@code /proc/PID/stat} (clock ticks
   * since boot) plus {@code btime} of {@code /proc/stat}. Null when unknown.
   */
  public Long processStartMillis(long pid) {
    String stat = read(root.resolve("proc").resolve(Long.toString(pid)).resolve("stat"));
    String all = read(root.resolve("proc/stat"));
    if (stat == null || all == null) {
      return null;
    }
    try {
      // the command name (field 2) is in parentheses and may contain spaces: count after the last ')'
      String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
      long ticks = Long.parseLong(f[22 - 3]);
      for (String line : all.split("\n")) {
        if (line.startsWith("btime ")) {
          long btime = Long.parseLong(line.substring(6).strip());
          return btime * 1000 + ticks * 1000 / USER_HZ;
        }
      }
    } catch (RuntimeException e) {
      // malformed: unknown
    }
    return null;
  }

  /** PIDs of the processes whose command name is one of {@code names}. */
  public List<Long> pidsNamed(Set<String> names) {
    List<Long> out = new ArrayList<>();
    for (String n : list(root.resolve("proc").toString())) {
      if (n.matches("[0-9]+")) {
        long pid = Long.parseLong(n);
        String comm = processName(pid);
        if (comm != null && names.contains(comm)) {
          out.add(pid);
        }
      }
    }
    return out;
  }

  /** Output of a command. */
  public record Result(int exit, String out, String err) {}

  /** Runs a command for at most {@code seconds}; exit -1 when it could not run or timed out. */
  public Result run(List<String> cmd, int seconds) {
    try {
      ProcessBuilder pb = new ProcessBuilder(cmd);
      pb.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
      Process p = pb.start();
      var out = new java.io.ByteArrayOutputStream();
      var err = new java.io.ByteArrayOutputStream();
      Thread a = new Thread(() -> copy(p.getInputStream(), out));
      Thread b = new Thread(() -> copy(p.getErrorStream(), err));
      a.start();
      b.start();
      if (!p.waitFor(seconds, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        return new Result(-1, "", "timed out after " + seconds + " s");
      }
      a.join();
      b.join();
      return new Result(p.exitValue(), out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    } catch (IOException e) {
      return new Result(-1, "", e.getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return new Result(-1, "", "interrupted");
    }
  }

  private static void copy(InputStream in, java.io.ByteArrayOutputStream to) {
    try (in) {
      in.transferTo(to);
    } catch (IOException ignored) {
      // the process is gone
    }
  }

  private static String read(Path p) {
    try {
      return Files.readString(p, StandardCharsets.UTF_8);
    } catch (IOException | RuntimeException e) {
      return null;
    }
  }
}
