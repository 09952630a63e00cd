//! `fault`: injected delays and error answers, to test how clients and services cope with a
//! slow or failing dependency. From the config, for a share of requests; and, for clients in
//! `header_from`, from the request's `x-rampart-fault` header (`delay=250ms`, `abort=503`, or
//! both, comma-separated). The header is removed before the request goes on. Every injected
//! fault shows in the access log: an abort with the reason `fault_abort`, a delay in the
//! line's `detail`, so neither is mistaken for a real failure.

use std::time::Duration;

use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use rampart_config::ConfigError;
use rampart_config::model::Fault;
use rampart_core::{
    Body, ErrorKind, Flow, IpSet, Phases, ProxyError, RequestCtx, Stage, StageFuture,
};
use rampart_core::{Prepared, RouteSpec, StageFactory};

/// The request header a trusted client asks for a fault with.
pub(crate) const FAULT_HEADER: HeaderName = HeaderName::from_static("x-rampart-fault");

/// Shares are counted in basis points (1/100 of a percent) of this whole.
const WHOLE: u32 = 10_000;

/// One compiled `fault` table.
#[derive(Debug)]
pub struct FaultStage {
    delay: Option<(Duration, u32)>,
    abort: Option<(StatusCode, u32)>,
    header_from: IpSet,
    max_delay: Duration,
}

/// The faults one request gets.
#[derive(Debug, Default, PartialEq, Eq)]
struct Injected {
    delay: Option<Duration>,
    abort: Option<StatusCode>,
}

impl FaultStage {
    /// True for a share of `points` basis points of the calls.
    fn sampled(points: u32) -> bool {
        points >= WHOLE || fastrand::u32(0..WHOLE) < points
    }

    /// What the config injects into this request.
    fn configured(&self) -> Injected {
        Injected {
            delay: self
                .delay
                .filter(|(_, points)| Self::sampled(*points))
                .map(|(d, _)| d),
            abort: self
                .abort
                .filter(|(_, points)| Self::sampled(*points))
                .map(|(s, _)| s),
        }
    }

    /// Reads an `x-rampart-fault` value: `delay=<duration>` and/or `abort=<status>`.
    fn parse_header(&self, value: &HeaderValue) -> Result<Injected, String> {
        let text = value.to_str().map_err(|_| "not text".to_owned())?;
        let mut injected = Injected::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("delay", d)) => {
                    let delay = rampart_config::units::parse_duration(d.trim())
                        .map_err(|why| format!("delay {d:?}: {why}"))?;
                    if delay > self.max_delay {
                        return Err(format!(
                            "a delay of {delay:?} is more than the route's max_delay of {:?}",
                            self.max_delay
                        ));
                    }
                    injected.delay = Some(delay);
                }
                Some(("abort", s)) => {
                    let status = s
                        .trim()
                        .parse::<u16>()
                        .ok()
                        .filter(|s| (400..=599).contains(s))
                        .and_then(|s| StatusCode::from_u16(s).ok())
                        .ok_or_else(|| format!("{s:?} is not an error status (400 to 599)"))?;
                    injected.abort = Some(status);
                }
                _ => {
                    return Err(format!(
                        "{part:?}: expected `delay=<duration>` or `abort=<status>`"
                    ));
                }
            }
        }
        Ok(injected)
    }
}

/// The answer of an injected abort.
fn abort_response(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Body::full(format!(
        "{status}: fault injected by the gateway\n"
    )));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

impl Stage for FaultStage {
    fn name(&self) -> &'static str {
        "fault"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    fn on_request<'a>(
        &'a self,
        req: &'a mut Request<Body>,
        ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        let asked = req.headers_mut().remove(FAULT_HEADER);
        let injected = match asked {
            Some(value) if self.header_from.contains(ctx.client_ip) => {
                match self.parse_header(&value) {
                    Ok(injected) => injected,
                    Err(why) => {
                        return Err(ProxyError::new(
                            ErrorKind::BadRequest,
                            format!("x-rampart-fault: {why}"),
                        ))
                        .into();
                    }
                }
            }
            _ => self.configured(),
        };
        let answer = |abort: Option<StatusCode>| match abort {
            Some(status) => Flow::respond(abort_response(status), "fault_abort"),
            None => Flow::Continue,
        };
        match injected.delay {
            None => Ok(answer(injected.abort)).into(),
            Some(delay) => {
                ctx.detail = Some(format!("fault_delay {}ms", delay.as_millis()));
                StageFuture::Pending(Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    Ok(answer(injected.abort))
                }))
            }
        }
    }
}

/// Builds a route's [`FaultStage`] from its `fault` table.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultStages;

impl StageFactory for FaultStages {
    fn name(&self) -> &'static str {
        "fault"
    }

    fn build(
        &self,
        route: &RouteSpec<'_>,
        _prepared: &Prepared,
    ) -> Result<Vec<Box<dyn Stage>>, Vec<ConfigError>> {
        let Some(fault) = &route.route.fault else {
            return Ok(Vec::new());
        };
        compile(route, fault).map(|stage| vec![Box::new(stage) as Box<dyn Stage>])
    }
}

fn compile(route: &RouteSpec<'_>, fault: &Fault) -> Result<FaultStage, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut points = |percent: &rampart_config::Located<f64>, key: &str| {
        let value = *percent.get();
        if (0.0..=100.0).contains(&value) {
            // The range check keeps the cast in 0..=10000.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let points = (value * 100.0).round() as u32;
            points
        } else {
            errors.push(route.error(
                Some(percent.span()),
                key,
                format!("{value} is not a share: expected 0 to 100"),
            ));
            0
        }
    };
    let delay = fault
        .delay
        .as_ref()
        .map(|d| (d.duration.get(), points(&d.percent, "fault.delay.percent")));
    let abort = fault
        .abort
        .as_ref()
        .map(|a| (a.status.clone(), points(&a.percent, "fault.abort.percent")));
    let abort = match abort {
        Some((status, points)) => match StatusCode::from_u16(*status.get()) {
            Ok(code) if (400..=599).contains(status.get()) => Some((code, points)),
            _ => {
                errors.push(route.error(
                    Some(status.span()),
                    "fault.abort.status",
                    format!(
                        "{} is not an error status: expected 400 to 599",
                        status.get()
                    ),
                ));
                None
            }
        },
        None => None,
    };
    if fault.delay.is_none() && fault.abort.is_none() && fault.header_from.is_empty() {
        errors.push(route.error(
            None,
            "fault",
            "a fault table needs `delay`, `abort` or `header_from`",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(FaultStage {
        delay,
        abort,
        header_from: IpSet::new(fault.header_from.iter().map(rampart_config::Located::get)),
        max_delay: fault.max_delay.get(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage() -> FaultStage {
        FaultStage {
            delay: None,
            abort: None,
            header_from: IpSet::default(),
            max_delay: Duration::from_secs(10),
        }
    }

    #[test]
    fn header_values_parse_or_say_why_not() {
        let s = stage();
        let parse = |v: &'static str| s.parse_header(&HeaderValue::from_static(v));
        assert_eq!(
            parse("delay=250ms, abort=503"),
            Ok(Injected {
                delay: Some(Duration::from_millis(250)),
                abort: Some(StatusCode::SERVICE_UNAVAILABLE),
            })
        );
        assert_eq!(
            parse("delay=2s").map(|i| i.delay),
            Ok(Some(Duration::from_secs(2)))
        );
        for bad in [
            "abort=200",
            "abort=x",
            "delay=11s",
            "delay=1h",
            "delay=",
            "boom",
            "abort=99999",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shares_sample_about_their_percent() {
        assert!(FaultStage::sampled(WHOLE));
        assert!((0..1000).all(|_| !FaultStage::sampled(0)));
        let hits = (0..10_000).filter(|_| FaultStage::sampled(2_500)).count();
        // 25% of 10,000: the binomial standard deviation is about 43; 10 of them either side.
        assert!((2_070..=2_930).contains(&hits), "{hits}");
    }
}
