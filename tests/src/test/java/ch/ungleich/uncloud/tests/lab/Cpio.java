package ch.ungleich.uncloud.tests.lab;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.zip.GZIPOutputStream;

/**
 * Minimal writer for the "newc" cpio format the kernel unpacks as initramfs (see the kernel's
 * Documentation/driver-api/early-userspace/buffer-format.rst): no cpio tool needed.
 */
final class Cpio {
  private final ByteArrayOutputStream buf = new ByteArrayOutputStream();
  private int ino = 1;

  Cpio dir(String name) {
    return entry(name, 0040755, new byte[0], 0, 0);
  }

  Cpio file(String name, int perm, byte[] data) {
    return entry(name, 0100000 | perm, data, 0, 0);
  }

  Cpio symlink(String name, String target) {
    return entry(name, 0120777, target.getBytes(StandardCharsets.UTF_8), 0, 0);
  }

  Cpio charDevice(String name, int perm, int major, int minor) {
    return entry(name, 0020000 | perm, new byte[0], major, minor);
  }

  private Cpio entry(String name, int mode, byte[] data, int rmajor, int rminor) {
    byte[] n = name.getBytes(StandardCharsets.UTF_8);
    String hdr =
        String.format(
            "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
            ino++, mode, 0, 0, 1, 0, data.length, 0, 0, rmajor, rminor, n.length + 1, 0);
    write(hdr.getBytes(StandardCharsets.US_ASCII));
    write(n);
    buf.write(0);
    pad();
    write(data);
    pad();
    return this;
  }

  private void write(byte[] b) {
    buf.write(b, 0, b.length);
  }

  private void pad() {
    while (buf.size() % 4 != 0) {
      buf.write(0);
    }
  }

  /** Appends the trailer and writes the gzip-compressed archive. */
  void writeGzip(OutputStream out) throws IOException {
    entry("TRAILER!!!", 0, new byte[0], 0, 0);
    try (GZIPOutputStream gz = new GZIPOutputStream(out, 1 << 16)) {
      buf.writeTo(gz);
    }
  }
}
