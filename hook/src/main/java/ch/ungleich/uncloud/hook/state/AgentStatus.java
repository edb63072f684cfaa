package ch.ungleich.uncloud.hook.state;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;
import java.util.Optional;

/**
 * What {@code uncloud-hook agent} last did, as {@code state_dir/agent.json}: written by the agent
 * (atomically: a temporary file, then a rename) after each action, read by {@code doctor} and
 * {@code status}. Times are epoch milliseconds; {@code 0} means never.
 *
 * @param pid the agent's process id (doctor checks it is alive)
 * @param uri the libvirt URI it is connected to
 * @param connected whether its libvirt connection is up right now
 * @param startedMs when the agent started
 * @param connectedMs when the current (or last) connection was opened
 * @param lastResyncMs when the last full resync (after a connect, or the periodic backstop) finished
 * @param lastError the last failure, one line, or null
 * @param updatedMs when this file was written (a heartbeat: the agent rewrites it at least every
 *     backstop period)
 * @param domains per running domain UUID, what the agent applied for it
 * @param etcd with {@code source = etcd}, the state of the agent's watch ("watching PREFIX on ENDPOINT
 *     from revision N", "retrying since ...: why"); null with {@code source = metadata}
 */
@JsonInclude(JsonInclude.Include.ALWAYS)
public record AgentStatus(
    @JsonProperty("pid") long pid,
    @JsonProperty("uri") String uri,
    @JsonProperty("connected") boolean connected,
    @JsonProperty("started_ms") long startedMs,
    @JsonProperty("connected_ms") long connectedMs,
    @JsonProperty("last_resync_ms") long lastResyncMs,
    @JsonProperty("last_error") String lastError,
    @JsonProperty("updated_ms") long updatedMs,
    @JsonProperty("domains") Map<String, Applied> domains,
    @JsonProperty("etcd") String etcd) {

  public static final String FILE = "agent.json";

  /** Without an etcd watch ({@code source = metadata}). */
  public AgentStatus(long pid, String uri, boolean connected, long startedMs, long connectedMs, long lastResyncMs,
      String lastError, long updatedMs, Map<String, Applied> domains) {
    this(pid, uri, connected, startedMs, connectedMs, lastResyncMs, lastError, updatedMs, domains, null);
  }

  private static final ObjectMapper JSON =
      new ObjectMapper().configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);

  /**
   * One domain as the agent last handled it.
   *
   * @param name the domain's name
   * @param digest {@link #digest(String)} of the metadata text the agent planned from (the live
   *     {@code uc:firewall} element as libvirt returned it, or {@code ""} for none)
   * @param appliedMs when its rules were last applied (0: never)
   * @param error why the current metadata was not applied (invalid metadata: the old rules stay), or null
   */
  public record Applied(
      @JsonProperty("name") String name,
      @JsonProperty("digest") String digest,
      @JsonProperty("applied_ms") long appliedMs,
      @JsonProperty("error") String error) {}

  /** The file's contents, or empty when there is none (no agent ever ran with this state_dir). */
  public static Optional<AgentStatus> read(String stateDir) {
    Path p = Path.of(stateDir, FILE);
    try {
      return Optional.of(JSON.readValue(Files.readString(p, StandardCharsets.UTF_8), AgentStatus.class));
    } catch (NoSuchFileException e) {
      return Optional.empty();
    } catch (IOException e) {
      throw new IllegalStateException(p + ": unreadable agent status: " + e.getMessage(), e);
    }
  }

  /** Writes the file atomically (readers never see half of it). */
  public void write(String stateDir) throws IOException {
    Path dir = Path.of(stateDir);
    Files.createDirectories(dir);
    Path tmp = dir.resolve("." + FILE + ".tmp");
    Files.write(tmp, JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(this));
    try {
      Files.move(tmp, dir.resolve(FILE), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (AtomicMoveNotSupportedException e) {
      Files.move(tmp, dir.resolve(FILE), StandardCopyOption.REPLACE_EXISTING);
    }
  }

  /** SHA-256 (hex) of a metadata text: what status compares with a domain's current live metadata. */
  public static String digest(String metadataXml) {
    try {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      return HexFormat.of().formatHex(md.digest((metadataXml == null ? "" : metadataXml).getBytes(StandardCharsets.UTF_8)));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
