package ch.ungleich.uncloud.tests.lab;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.stream.Stream;

/**
 * The lab guest: Debian's kernel (the package linux-image-amd64 depends on) and an initramfs with
 * busybox-static, our /init (resource lab/init.sh) and the probe sender ucprobe (resource
 * lab/ucprobe.c, compiled with gcc -static). Nothing is installed: the two packages are taken with
 * `apt-get download` and unpacked with dpkg-deb, so a fresh CI machine only needs `apt-get update`.
 *
 * <p>Everything is cached under {@link #cacheRoot()} (default /var/cache/uncloud-hook-tests/guest,
 * property uncloud.guest.cache) and reused between runs; each cache entry is built in a temporary
 * directory and renamed into place, so concurrent test runs never see half-built files.
 */
public record GuestImage(Path kernel, Path initrd, String kernelPackage, Path emulator) {

  /** Kernel modules for a virtio NIC, in load order (Debian builds them as modules). */
  static final List<String> MODULES =
      List.of(
          "virtio_ring",
          "virtio",
          "virtio_pci_modern_dev",
          "virtio_pci_legacy_dev",
          "virtio_pci",
          "failover",
          "net_failover",
          "virtio_net");

  public static Path cacheRoot() {
    return Path.of(System.getProperty("uncloud.guest.cache", "/var/cache/uncloud-hook-tests/guest"));
  }

  /** Builds (first run) or finds (later runs) the guest image. */
  public static synchronized GuestImage ensure() {
    try {
      Path root = cacheRoot();
      Files.createDirectories(root);
      String pkg = kernelPackage(root);
      Path kdir = root.resolve("kernel-" + pkg);
      if (!Files.isRegularFile(kdir.resolve("vmlinuz"))) {
        download(root, pkg, kdir);
      }
      // -Duncloud.guest.boot=bzimage boots the compressed image the classic way
      Path kernel = "bzimage".equals(System.getProperty("uncloud.guest.boot")) ? kdir.resolve("vmlinuz") : vmlinux(kdir);
      byte[] src = resource("ucprobe.c");
      Path probe = root.resolve("ucprobe-" + sha(src).substring(0, 16));
      if (!Files.isRegularFile(probe)) {
        compileProbe(root, src, probe);
      }
      byte[] init = resource("init.sh");
      String key = sha(concat(pkg.getBytes(StandardCharsets.UTF_8), init, Files.readAllBytes(probe)));
      Path initrd = root.resolve("initrd-" + key.substring(0, 16) + ".gz");
      if (!Files.isRegularFile(initrd)) {
        buildInitrd(root, kdir, init, probe, initrd);
      }
      return new GuestImage(kernel, initrd, pkg, emulator(root.getParent()));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** linux-image-6.1.0-NN-amd64: what linux-image-amd64 depends on now (or the cached one). */
  private static String kernelPackage(Path root) throws IOException {
    Cmd.Result r = Cmd.run("apt-cache", "depends", "linux-image-amd64");
    if (r.ok()) {
      for (String line : r.out().split("\n")) {
        String l = line.strip();
        if (l.matches("Depends: linux-image-[0-9].*")) {
          return l.substring("Depends: ".length()).strip();
        }
      }
    }
    try (Stream<Path> s = Files.list(root)) { // no apt lists (offline rerun): take what we have
      return s.map(p -> p.getFileName().toString())
          .filter(n -> n.startsWith("kernel-"))
          .map(n -> n.substring("kernel-".length()))
          .max(Comparator.naturalOrder())
          .orElseThrow(
              () ->
                  new IllegalStateException(
                      "no kernel package known: run `apt-get update` (apt-cache depends linux-image-amd64: "
                          + r.err().strip()
                          + ")"));
    }
  }

  private static void download(Path root, String pkg, Path kdir) throws IOException {
    Path tmp = Files.createTempDirectory(root, ".dl-");
    try {
      Cmd.run(List.of("apt-get", "download", "-q", pkg, "busybox-static"), null, tmp, 600).check();
      Path x = Files.createDirectories(tmp.resolve("x"));
      Path kdeb = only(tmp, "linux-image-");
      Path bdeb = only(tmp, "busybox-static_");
      // the image is ~70 MB of xz: unpack only the kernel and the NIC modules (dpkg-deb -x would
      // write ~400 MB of modules)
      StringBuilder pat = new StringBuilder("'./boot/vmlinuz-*'");
      for (String m : MODULES) {
        pat.append(" '*/").append(m).append(".ko'");
      }
      Cmd.sh("dpkg-deb --fsys-tarfile '" + kdeb + "' | tar -x -C '" + x + "' --wildcards " + pat).check();
      Cmd.run("dpkg-deb", "-x", bdeb.toString(), x.toString()).check();
      Path out = Files.createDirectories(tmp.resolve("out"));
      Path mod = Files.createDirectories(out.resolve("mod"));
      try (Stream<Path> s = Files.list(x.resolve("boot"))) {
        Files.copy(s.filter(p -> p.getFileName().toString().startsWith("vmlinuz-")).findFirst().orElseThrow(),
            out.resolve("vmlinuz"));
      }
      for (String m : MODULES) {
        try (Stream<Path> s = Files.walk(x.resolve("lib/modules"))) {
          Path ko = s.filter(p -> p.getFileName().toString().equals(m + ".ko")).findFirst()
              .orElseThrow(() -> new IllegalStateException("module " + m + ".ko not in " + kdeb));
          Files.copy(ko, mod.resolve(m + ".ko"));
        }
      }
      Files.copy(x.resolve("bin/busybox"), out.resolve("busybox"));
      publish(out, kdir);
    } finally {
      deleteTree(tmp);
    }
  }

  /**
   * The emulator for lab domains: qemu-system-x86_64 with single-threaded TCG. QEMU 7.2's default
   * multi-threaded TCG loses dirty-page tracking during live migration: about 1 migration in 20
   * left the guest with stale memory (kernel oops in the timer interrupt, hrtimer function NULL or
   * garbage, then panic), with either boot method; with thread=single 80 of 80 were fine. libvirt
   * has no XML for TCG's thread mode, so a wrapper rewrites `-accel tcg`. It lives at a stable path
   * (written only when its text changes) so libvirt's per-emulator capabilities cache stays valid.
   * -Duncloud.guest.emulator=/usr/bin/qemu-system-x86_64 bypasses it.
   */
  static Path emulator(Path dir) throws IOException {
    String prop = System.getProperty("uncloud.guest.emulator");
    if (prop != null && !prop.isBlank()) {
      return Path.of(prop);
    }
    String text =
        "#!/bin/sh\n"
            + "# uncloud-hook test lab: qemu-system-x86_64 with single-threaded TCG (see GuestImage.java)\n"
            + "n=$#; prev=\n"
            + "while [ $n -gt 0 ]; do\n"
            + "  a=$1; shift; n=$((n-1))\n"
            + "  if [ \"$prev\" = -accel ] && [ \"$a\" = tcg ]; then a=tcg,thread=single; fi\n"
            + "  set -- \"$@\" \"$a\"; prev=$a\n"
            + "done\n"
            + "exec /usr/bin/qemu-system-x86_64 \"$@\"\n";
    Path w = dir.resolve("qemu-system-x86_64-tcg-single");
    if (Files.isRegularFile(w) && Files.readString(w).equals(text)) {
      return w;
    }
    Path tmp = Files.createTempFile(dir, ".qemu-", ".tmp");
    Files.writeString(tmp, text);
    Files.setPosixFilePermissions(tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
    Files.move(tmp, w, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    return w;
  }

  /**
   * The uncompressed kernel (ELF) unpacked from the bzImage: qemu boots it through its PVH entry
   * (Debian sets CONFIG_PVH), which skips the xz decompression that costs a TCG guest ~2.5 s of CPU
   * per boot. Falls back to the bzImage if unpacking fails.
   */
  private static Path vmlinux(Path kdir) throws IOException {
    Path elf = kdir.resolve("vmlinux");
    if (Files.isRegularFile(elf)) {
      return elf;
    }
    byte[] bz = Files.readAllBytes(kdir.resolve("vmlinuz"));
    int off = indexOf(bz, new byte[] {(byte) 0xfd, '7', 'z', 'X', 'Z', 0});
    if (off < 0) {
      return kdir.resolve("vmlinuz");
    }
    Path tmp = Files.createTempFile(kdir, ".vmlinux-", ".tmp");
    ProcessBuilder pb = new ProcessBuilder("xz", "-dc", "--single-stream");
    pb.redirectOutput(tmp.toFile());
    pb.redirectError(ProcessBuilder.Redirect.DISCARD);
    Process p = pb.start();
    try (OutputStream o = p.getOutputStream()) {
      o.write(bz, off, bz.length - off);
    } catch (IOException e) {
      // xz stops reading after the stream: the trailing bytes do not matter
    }
    try {
      int rc = p.waitFor();
      byte[] head = new byte[4];
      try (InputStream in = Files.newInputStream(tmp)) {
        if (rc != 0 || in.read(head) != 4 || head[0] != 0x7f || head[1] != 'E' || head[2] != 'L' || head[3] != 'F') {
          Files.deleteIfExists(tmp);
          return kdir.resolve("vmlinuz");
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
    Files.setPosixFilePermissions(tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
    publish(tmp, elf);
    return elf;
  }

  private static int indexOf(byte[] hay, byte[] needle) {
    outer:
    for (int i = 0; i + needle.length <= hay.length; i++) {
      for (int j = 0; j < needle.length; j++) {
        if (hay[i + j] != needle[j]) {
          continue outer;
        }
      }
      return i;
    }
    return -1;
  }

  private static void compileProbe(Path root, byte[] src, Path probe) throws IOException {
    Path tmp = Files.createTempDirectory(root, ".cc-");
    try {
      Files.write(tmp.resolve("ucprobe.c"), src);
      Cmd.run(List.of("gcc", "-static", "-Os", "-s", "-Wall", "-o", "ucprobe", "ucprobe.c"), null, tmp, 120)
          .check();
      publish(tmp.resolve("ucprobe"), probe);
    } finally {
      deleteTree(tmp);
    }
  }

  private static void buildInitrd(Path root, Path kdir, byte[] init, Path probe, Path initrd)
      throws IOException {
    Cpio c = new Cpio();
    for (String d : List.of("bin", "sbin", "usr", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "lib", "lib/mod")) {
      c.dir(d);
    }
    c.charDevice("dev/console", 0600, 5, 1);
    c.file("init", 0755, init);
    c.file("bin/busybox", 0755, Files.readAllBytes(kdir.resolve("busybox")));
    c.symlink("bin/sh", "busybox");
    c.file("bin/ucprobe", 0755, Files.readAllBytes(probe));
    for (String m : MODULES) {
      c.file("lib/mod/" + m + ".ko", 0644, Files.readAllBytes(kdir.resolve("mod/" + m + ".ko")));
    }
    c.file("lib/mod/order", 0644, (String.join("\n", MODULES) + "\n").getBytes(StandardCharsets.UTF_8));
    Path tmp = Files.createTempFile(root, ".initrd-", ".gz");
    try (OutputStream o = Files.newOutputStream(tmp)) {
      c.writeGzip(o);
    }
    Files.setPosixFilePermissions(tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
    publish(tmp, initrd);
  }

  /** Renames a finished file or directory into place; if another run was first, keeps theirs. */
  private static void publish(Path built, Path target) throws IOException {
    try {
      Files.move(built, target, StandardCopyOption.ATOMIC_MOVE);
    } catch (FileAlreadyExistsException | DirectoryNotEmptyException | AtomicMoveNotSupportedException e) {
      if (!Files.exists(target)) {
        throw e;
      }
      deleteTree(built);
    }
  }

  private static Path only(Path dir, String prefix) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.filter(p -> p.getFileName().toString().startsWith(prefix)).findFirst()
          .orElseThrow(() -> new IllegalStateException("apt-get download gave no " + prefix + "*.deb"));
    }
  }

  static byte[] resource(String name) {
    try (InputStream in = GuestImage.class.getResourceAsStream("/lab/" + name)) {
      if (in == null) {
        throw new IllegalStateException("test resource lab/" + name + " missing");
      }
      return in.readAllBytes();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static byte[] concat(byte[]... parts) {
    int n = 0;
    for (byte[] p : parts) {
      n += p.length;
    }
    byte[] r = new byte[n];
    int o = 0;
    for (byte[] p : parts) {
      System.arraycopy(p, 0, r, o, p.length);
      o += p.length;
    }
    return r;
  }

  /** Hex SHA-256 of {@code b}. */
  public static String sha(byte[] b) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /** rm -rf without following symlinks. */
  public static void deleteTree(Path p) {
    if (p == null || !Files.exists(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
      return;
    }
    try (Stream<Path> s = Files.walk(p)) {
      for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(q);
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot delete " + p, e);
    }
  }
}
