package ch.ungleich.uncloud.hook.config;

import ch.ungleich.uncloud.hook.UncloudException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Map;

/** Loads {@link Config} from {@code $UNCLOUD_HOOK_CONFIG} or the default path; a missing file is the defaults. */
public final class ConfigFile {
  private ConfigFile() {}

  public static String path(Map<String, String> env) {
    String p = env.get(Config.ENV);
    return p == null || p.isBlank() ? Config.DEFAULT_PATH : p;
  }

  public static Config load(Map<String, String> env) {
    String path = path(env);
    try {
      return Config.parse(Files.readString(Path.of(path), StandardCharsets.UTF_8), path);
    } catch (NoSuchFileException e) {
      return Config.defaults();
    } catch (IOException e) {
      throw UncloudException.invalid("cannot read " + path + ": " + e.getMessage());
    }
  }
}
