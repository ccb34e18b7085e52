//! The filters of the bulk and list endpoints (`DELETE /v2/messages`, `/v2/dlq`, `/v2/logs`):
//! query parameters, each repeatable or comma-separated (any value matches), all of them
//! required together. A parameter an endpoint does not know is refused by name, never ignored.

use crate::error::ApiError;

/// Which parameters an endpoint takes besides the filter fields every one of them takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `DELETE /v2/messages`: `host`, `path`, `count`.
    Cancel,
    /// `GET`/`DELETE /v2/dlq`, `POST /v2/dlq/retry`: `messageId`, `responseStatus`, `dlqIds`,
    /// `count`, `cursor`.
    Dlq,
    /// `GET /v2/logs` and `/v2/events`: `host`, `path`, `state`, `messageId(s)`, `count`,
    /// `cursor`.
    Logs,
}

const COMMON: &[&str] = &[
    "url",
    "topicName",
    "urlGroup",
    "scheduleId",
    "queueName",
    "callerIp",
    "label",
    "flowControlKey",
    "fromDate",
    "toDate",
    "count",
    "qstash_token",
];

impl Endpoint {
    fn takes(self, name: &str) -> bool {
        COMMON.contains(&name)
            || match self {
                Self::Cancel => matches!(name, "host" | "path" | "messageIds"),
                Self::Dlq => matches!(
                    name,
                    "messageId" | "responseStatus" | "dlqIds" | "cursor" | "all"
                ),
                Self::Logs => matches!(
                    name,
                    "host" | "path" | "state" | "messageId" | "messageIds" | "cursor"
                ),
            }
    }
}

/// The filter fields of one request. Empty lists match everything.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub(crate) message_ids: Vec<String>,
    urls: Vec<String>,
    topics: Vec<String>,
    schedules: Vec<String>,
    queues: Vec<String>,
    caller_ips: Vec<String>,
    labels: Vec<String>,
    flow_keys: Vec<String>,
    hosts: Vec<String>,
    paths: Vec<String>,
    states: Vec<String>,
    response_status: Vec<u16>,
    from_ms: Option<u64>,
    to_ms: Option<u64>,
}

/// What a record shows to a filter.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fields<'a> {
    pub(crate) message_id: &'a str,
    pub(crate) url: &'a str,
    pub(crate) topic: Option<&'a str>,
    pub(crate) schedule: Option<&'a str>,
    pub(crate) queue: Option<&'a str>,
    pub(crate) caller_ip: Option<&'a str>,
    pub(crate) labels: &'a [String],
    pub(crate) flow_key: Option<&'a str>,
    pub(crate) state: Option<&'a str>,
    pub(crate) response_status: Option<u16>,
    pub(crate) time_ms: u64,
}

fn any(want: &[String], got: Option<&str>) -> bool {
    want.is_empty() || got.is_some_and(|got| want.iter().any(|w| w == got))
}

/// A date parameter: unix milliseconds.
fn date(name: &str, value: &str) -> Result<u64, ApiError> {
    value.trim().parse::<u64>().map_err(|_| {
        ApiError::bad_request(format!("invalid {name} {value:?}: use unix milliseconds"))
    })
}

impl Filter {
    /// Reads the query `pairs` for `endpoint`.
    ///
    /// # Errors
    ///
    /// 400 naming a parameter the endpoint does not take or a malformed value.
    pub(crate) fn parse(pairs: &[(String, String)], endpoint: Endpoint) -> Result<Self, ApiError> {
        let mut filter = Self::default();
        for (name, value) in pairs {
            if !endpoint.takes(name) {
                return Err(ApiError::bad_request(format!(
                    "the local QStash does not support the query parameter {name:?} here"
                )));
            }
            let values = value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
            match name.as_str() {
                "messageId" | "messageIds" => filter.message_ids.extend(values),
                "url" => filter.urls.extend(values),
                "topicName" | "urlGroup" => filter.topics.extend(values),
                "scheduleId" => filter.schedules.extend(values),
                "queueName" => filter.queues.extend(values),
                "callerIp" => filter.caller_ips.extend(values),
                "label" => filter.labels.extend(values),
                "flowControlKey" => filter.flow_keys.extend(values),
                "host" => filter.hosts.extend(values),
                "path" => filter.paths.extend(values),
                "state" => filter.states.extend(values),
                "responseStatus" => {
                    for v in values {
                        let status = v.parse::<u16>().map_err(|_| {
                            ApiError::bad_request(format!("invalid responseStatus {v:?}"))
                        })?;
                        filter.response_status.push(status);
                    }
                }
                "fromDate" => filter.from_ms = Some(date(name, value)?),
                "toDate" => filter.to_ms = Some(date(name, value)?),
                // count, cursor, dlqIds, all, qstash_token: the endpoint reads them.
                _ => {}
            }
        }
        Ok(filter)
    }

    /// Whether no filter field is set (ids aside).
    pub(crate) fn is_empty(&self) -> bool {
        self.urls.is_empty()
            && self.topics.is_empty()
            && self.schedules.is_empty()
            && self.queues.is_empty()
            && self.caller_ips.is_empty()
            && self.labels.is_empty()
            && self.flow_keys.is_empty()
            && self.hosts.is_empty()
            && self.paths.is_empty()
            && self.states.is_empty()
            && self.response_status.is_empty()
            && self.from_ms.is_none()
            && self.to_ms.is_none()
    }

    /// Whether a record with `fields` passes every filter set.
    pub(crate) fn matches(&self, fields: &Fields<'_>) -> bool {
        let url = url::Url::parse(fields.url).ok();
        any(&self.message_ids, Some(fields.message_id))
            && any(&self.urls, Some(fields.url))
            && any(&self.topics, fields.topic)
            && any(&self.schedules, fields.schedule)
            && any(&self.queues, fields.queue)
            && any(&self.caller_ips, fields.caller_ip)
            && (self.labels.is_empty() || fields.labels.iter().any(|l| self.labels.contains(l)))
            && any(&self.flow_keys, fields.flow_key)
            && any(&self.hosts, url.as_ref().and_then(url::Url::host_str))
            && any(&self.paths, url.as_ref().map(url::Url::path))
            && any(&self.states, fields.state)
            && (self.response_status.is_empty()
                || fields
                    .response_status
                    .is_some_and(|s| self.response_status.contains(&s)))
            && self.from_ms.is_none_or(|from| fields.time_ms >= from)
            && self.to_ms.is_none_or(|to| fields.time_ms <= to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn fields_and_values_combine_as_and_of_ors() {
        let labels = vec!["a".to_owned(), "b".to_owned()];
        let record = Fields {
            message_id: "msg_1",
            url: "https://example.com/hook",
            labels: &labels,
            time_ms: 100,
            ..Fields::default()
        };
        let cases = [
            (vec![("label", "b,z")], true),
            (vec![("label", "z")], false),
            (vec![("label", "z"), ("label", "a")], true),
            (vec![("label", "a"), ("host", "example.com")], true),
            (vec![("label", "a"), ("host", "other.com")], false),
            (vec![("path", "/hook"), ("fromDate", "100")], true),
            (vec![("toDate", "99")], false),
            (vec![("queueName", "q")], false),
        ];
        for (query, want) in cases {
            let filter = Filter::parse(&pairs(&query), Endpoint::Cancel).unwrap();
            assert!(!filter.is_empty());
            assert_eq!(filter.matches(&record), want, "{query:?}");
        }
    }

    #[test]
    fn unknown_parameters_and_bad_values_are_refused_by_name() {
        for (query, endpoint, says) in [
            (vec![("lable", "a")], Endpoint::Cancel, "lable"),
            (vec![("state", "DELIVERED")], Endpoint::Dlq, "state"),
            (
                vec![("responseStatus", "x")],
                Endpoint::Dlq,
                "responseStatus",
            ),
            (vec![("fromDate", "yesterday")], Endpoint::Logs, "fromDate"),
        ] {
            let error = Filter::parse(&pairs(&query), endpoint).unwrap_err();
            assert_eq!(error.status(), 400);
            assert!(error.message().contains(says), "{error}");
        }
    }
}
