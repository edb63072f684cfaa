package ch.ungleich.uncloud.hook.invocation;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The reconnect spool (edge): a directory where the hook launcher leaves each {@code reconnect begin}
 * call's domain XML as {@code <pid>.xml} (written to a dot file, then renamed, so a reader never sees
 * half a document) for {@link HookBatch} to handle all at once.
 */
final class Spool {
  /** One spooled call: its file name, the XML, and whether it is older than the staleness limit. */
  record Entry(String file, String xml, boolean stale) {}

  private final Path dir;

  Spool(String dir) {
    this.dir = Path.of(dir);
  }

  @Override
  public String toString() {
    return dir.toString();
  }

  /** The complete documents ({@code *.xml}, no dot files), by name; empty when the directory is missing. */
  List<Entry> read(long staleSeconds) throws IOException {
    List<Path> files = new ArrayList<>();
    try (var s = Files.list(dir)) {
      s.filter(p -> {
            String n = p.getFileName().toString();
            return n.endsWith(".xml") && !n.startsWith(".") && Files.isRegularFile(p);
          })
          .sorted()
          .forEach(files::add);
    } catch (NoSuchFileException e) {
      return List.of();
    }
    long now = System.currentTimeMillis();
    List<Entry> out = new ArrayList<>();
    for (Path p : files) {
      try {
        boolean stale = now - Files.getLastModifiedTime(p).toMillis() > staleSeconds * 1000;
        out.add(new Entry(p.getFileName().toString(), Files.readString(p, StandardCharsets.UTF_8), stale));
      } catch (NoSuchFileException e) {
        // taken by another reader (a launcher that gave up waiting handles its own file)
      }
    }
    return out;
  }

  /** Removes a handled file; telling the launcher that waits for it that its domain was handled. */
  void remove(String file) throws IOException {
    Files.deleteIfExists(dir.resolve(file));
  }
}
